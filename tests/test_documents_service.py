"""Documents, filters and hybrid search through the CLI and the HTTP server.

The CLI runs as a real subprocess (``tests.test_cli.run_cli``) and the server
as a real uvicorn process (``tests.test_server._start_server``), with the tiny
fixture ColBERT.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from pylate_clone import indexes
from tests.test_cli import _in_process, run_cli
from tests.test_server import _start_server, _stop_server

TOPICS = ("wings", "bread", "rivers", "music")
WORDS = {
    "wings": "an experimental study of a wing in a propeller slipstream",
    "bread": "bake bread with flour water salt and yeast",
    "rivers": "the river floods the valley every spring",
    "music": "the orchestra played a symphony in the evening",
}


def _rows(n: int = 24) -> list[dict]:
    rows = []
    for i in range(n):
        topic = TOPICS[i % 4]
        rows.append(
            {
                "_id": f"doc{i}",
                "title": f"{topic} {i}",
                "text": f"{WORDS[topic]} number{i}",
                "year": 2000 + i,
                "topic": topic,
                "tags": [topic, "even" if i % 2 == 0 else "odd"],
            }
        )
    return rows


@pytest.fixture(scope="module")
def model_dir(fixtures_dir: Path) -> str:
    return str(fixtures_dir / "models" / "tiny-colbert")


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("collection")
    (folder / "corpus.jsonl").write_text(
        "\n".join(json.dumps(row) for row in _rows()) + "\n", encoding="utf-8"
    )
    queries = [
        {"_id": "q1", "text": "propeller wing study"},
        {"_id": "q2", "text": "baking bread with yeast"},
    ]
    (folder / "queries.jsonl").write_text(
        "\n".join(json.dumps(q) for q in queries) + "\n", encoding="utf-8"
    )
    return folder


def _run(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        query, _, doc, *_ = line.split()
        out.setdefault(query, []).append(doc)
    return out


@pytest.mark.slow
def test_cli_stores_texts_and_metadata_and_searches_with_filter_and_hybrid(
    collection, model_dir, tmp_path
):
    location = ["--index", tmp_path / "idx", "--index-name", "docs"]
    built = run_cli(
        "index", "--model", model_dir, "--corpus", collection, "--kind", "exact",
        *location, "--quiet",
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    index = indexes.Exact(index_folder=tmp_path / "idx", index_name="docs")
    (record,) = index.get_documents(["doc5"])
    assert record["document"] == f"bread 5 {WORDS['bread']} number5"
    assert record["metadata"] == {
        "year": 2005,
        "topic": "bread",
        "tags": ["bread", "odd"],
    }

    def search(*extra: str) -> subprocess.CompletedProcess:
        return run_cli(
            "search", "--model", model_dir, *location, "--queries", collection,
            "-k", "5", "--output", tmp_path / "run.trec", "--quiet", *extra,
        )  # fmt: skip

    filtered = search("--filter", '{"topic": "music", "year": {"$gte": 2010}}')
    assert filtered.returncode == 0, filtered.stderr
    allowed = {f"doc{i}" for i in range(24) if i % 4 == 3 and i >= 10}
    found = _run(tmp_path / "run.trec")
    assert set(found) == {"q1", "q2"}
    assert all(set(docs) <= allowed and docs for docs in found.values())

    hybrid = search("--hybrid", "--fusion", "relative", "--alpha", "0.2")
    assert hybrid.returncode == 0, hybrid.stderr
    found = _run(tmp_path / "run.trec")
    # BM25 weighs 0.8: the documents sharing the query's words come first.
    assert found["q1"][0] in {f"doc{i}" for i in range(0, 24, 4)}
    assert found["q2"][0] in {f"doc{i}" for i in range(1, 24, 4)}


def test_cli_search_refuses_bad_filters_before_loading_the_model(
    collection, tmp_path, capsys
):
    # In process (the real process's one-line errors are tests/test_cli.py's):
    # the model folder does not exist, so passing means the check came first.
    search = [
        "search", "--model", tmp_path / "no-model", "--index", tmp_path,
        "--queries", collection, "--output", tmp_path / "run.trec",
    ]  # fmt: skip
    for extra, words in [
        (
            ["--filter", '{"year": {"$between": [1, 2]}}'],
            ["filter['year']['$between']"],
        ),
        (["--filter", "{year: 2}"], ["--filter is not valid JSON"]),
        (["--fusion", "relative"], ["--hybrid"]),
    ]:
        status, err = _in_process([*search, *extra], capsys)
        assert status == 2, err
        assert all(word in err for word in words), err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.slow
def test_server_filter_hybrid_documents_and_malformed_filters(
    collection, model_dir, tmp_path
):
    indexes.PLAID(index_folder=tmp_path, index_name="docs", show_progress=False)
    process, url = _start_server(
        ["--model", model_dir, "--index", str(tmp_path), "--index-name", "docs"]
    )
    try:
        rows = _rows()
        added = httpx.post(
            f"{url}/v1/documents",
            json={
                "ids": [r["_id"] for r in rows],
                "documents": [f"{r['title']} {r['text']}" for r in rows],
                "metadata": [
                    {"year": r["year"], "topic": r["topic"], "tags": r["tags"]}
                    for r in rows
                ],
            },
            timeout=120,
        )
        assert added.status_code == 200, added.text
        assert added.json() == {"added": 24, "documents": 24}

        got = httpx.post(
            f"{url}/v1/documents/get", json={"ids": ["doc2", "nope"]}, timeout=30
        )
        assert got.status_code == 200, got.text
        assert got.json()["documents"] == [
            {
                "id": "doc2",
                "document": f"rivers 2 {WORDS['rivers']} number2",
                "metadata": {
                    "year": 2002,
                    "topic": "rivers",
                    "tags": ["rivers", "even"],
                },
            },
            {"id": "nope", "document": None, "metadata": None},
        ]

        def search(body: dict) -> httpx.Response:
            return httpx.post(f"{url}/v1/search", json=body, timeout=120)

        body = {
            "queries": ["a study of a wing"],
            "k": 3,
            "filter": {
                "$and": [{"tags": {"$contains": "even"}}, {"year": {"$lt": 2010}}]
            },
            "return_documents": True,
        }
        answer = search(body)
        assert answer.status_code == 200, answer.text
        hits = answer.json()["results"][0]
        allowed = {f"doc{i}" for i in range(0, 10, 2)}
        assert len(hits) == 3 and {h["id"] for h in hits} <= allowed
        for hit in hits:
            number = int(hit["id"][3:])
            assert hit["metadata"]["year"] == 2000 + number
            assert hit["document"].endswith(f"number{number}")

        hybrid = search(
            {"queries": ["number17"], "k": 2, "hybrid": True, "fusion": "rrf"}
        )
        assert hybrid.status_code == 200, hybrid.text
        assert "doc17" in [h["id"] for h in hybrid.json()["results"][0]]
        plain = search({"queries": ["number17"], "k": 2})
        assert set(plain.json()["results"][0][0]) == {"id", "score"}

        for bad, part in [
            ({"year": {"$between": 1}}, "filter['year']['$between']"),
            ({"x'); DROP TABLE documents; --": 1}, "not a metadata key"),
            ({"$or": []}, "filter['$or']"),
            ([1, 2], "filter"),
        ]:
            refused = search({"queries": ["x"], "filter": bad})
            assert refused.status_code == 422, refused.text
            detail = refused.json()["detail"]
            assert detail[0]["loc"][-1] == "filter" or "filter" in json.dumps(detail)
            assert part in json.dumps(detail)
        for body, field in [
            ({"queries": ["x"], "fusion": "max", "hybrid": True}, "fusion"),
            ({"queries": ["x"], "alpha": 3, "hybrid": True}, "alpha"),
            ({"queries": ["x"], "hybrid": "yes"}, "hybrid"),
        ]:
            refused = search(body)
            assert refused.status_code == 422, refused.text
            assert field in json.dumps(refused.json()["detail"])
        mismatch = httpx.post(
            f"{url}/v1/documents",
            json={"ids": ["a", "b"], "documents": ["x", "y"], "metadata": [{}]},
            timeout=30,
        )
        assert mismatch.status_code == 422 and "metadata" in mismatch.text
        # Still serving, documents intact.
        assert httpx.get(f"{url}/health").json()["documents"] == 24
    finally:
        stderr = _stop_server(process)
    assert "Traceback" not in stderr, stderr[-3000:]
