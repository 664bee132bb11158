"""The HTTP server: fine-grained cases through TestClient, the rest through a real
uvicorn process on a free loopback port.

The model is the tiny fixture ColBERT (fast); the index a small Voyager built
from its embeddings.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from pylate_clone import indexes, models, rank, retrieve
from pylate_clone.server.app import ServerConfig, create_app
from pylate_clone.server.batcher import MicroBatcher
from pylate_clone.server.rwlock import ReadWriteLock

ROOT = Path(__file__).resolve().parents[1]

DOCUMENTS = {
    "cat": "the cat sat on the mat and slept all afternoon",
    "paris": "paris is the capital and largest city of france",
    "colbert": "colbert scores queries and documents by late interaction",
    "wing": "an experimental study of a wing in a propeller slipstream",
    "bread": "bake bread with flour water salt and yeast",
    7: "integer ids are kept as integers",
}


@pytest.fixture(scope="module")
def model_dir(fixtures_dir: Path) -> str:
    return str(fixtures_dir / "models" / "tiny-colbert")


@pytest.fixture(scope="module")
def model(model_dir: str):
    return models.ColBERT(model_dir, device="cpu")


def _voyager(folder: Path, model) -> indexes.Voyager:
    index = indexes.Voyager(
        index_folder=str(folder), index_name="docs", show_progress=False
    )
    index.add_documents(
        list(DOCUMENTS), model.encode(list(DOCUMENTS.values()), is_query=False)
    )
    return index


@pytest.fixture
def client(tmp_path: Path, model, model_dir: str):
    index = _voyager(tmp_path, model)
    app = create_app(model, ServerConfig(model_name=model_dir), index=index)
    with TestClient(app) as test_client:
        test_client.index = index
        yield test_client


def _fields(response) -> list[str]:
    """Names of the fields an error ``detail`` points at."""
    detail = response.json()["detail"]
    assert isinstance(detail, list), detail
    return [str(item["loc"][1]) for item in detail]


# -- embeddings ------------------------------------------------------------------


def test_embeddings_equal_model_encode(client, model, model_dir):
    texts = ["what is late interaction?", "a second, longer query about wings"]
    for is_query in (True, False):
        response = client.post(
            "/v1/embeddings",
            json={"input": texts, "is_query": is_query, "model": model_dir},
        )
        assert response.status_code == 200
        body = response.json()
        assert body["model"] == model_dir
        assert body["usage"] == {"prompt_tokens": 10, "total_tokens": 10}
        expected = model.encode(texts, is_query=is_query)
        assert [item["index"] for item in body["data"]] == [0, 1]
        for item, reference in zip(body["data"], expected):
            assert item["object"] == "embedding"
            got = np.asarray(item["embedding"], dtype=np.float32)
            assert got.shape == reference.shape
            np.testing.assert_allclose(got, reference, atol=1e-5)
    # Queries are expanded to query_length; documents keep their own length.
    assert expected[0].shape[0] != 32


def test_single_string_is_one_input(client, model, model_dir):
    response = client.post(
        "/v1/embeddings", json={"input": "hello wide world", "model": model_dir}
    )
    assert response.status_code == 200
    body = response.json()
    assert len(body["data"]) == 1
    assert body["usage"]["prompt_tokens"] == 3
    reference = model.encode(["hello wide world"], is_query=True)[0]
    np.testing.assert_allclose(body["data"][0]["embedding"], reference, atol=1e-5)


def test_unknown_or_missing_model_is_400(client):
    for body in ({"input": ["x"], "model": "other/model"}, {"input": ["x"]}):
        response = client.post("/v1/embeddings", json=body)
        assert response.status_code == 400
        assert _fields(response) == ["model"]
        assert "is not served" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": []}, "input"),
        ({"input": ["a"] * 257}, "input"),
        ({"input": [1, 2]}, "input"),
        ({"input": None}, "input"),
        ({"input": ["a"], "is_query": "yes"}, "is_query"),
        ({"input": ["a"], "model": 3}, "model"),
        ({}, "input"),
    ],
)
def test_bad_embedding_requests_name_the_field(client, model_dir, body, field):
    body = {"model": model_dir, **body}
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 422
    assert set(_fields(response)) == {field}


# -- search ----------------------------------------------------------------------


def test_search_matches_the_retriever(client, model):
    queries = ["capital of france", "bake bread with flour and yeast"]
    response = client.post("/v1/search", json={"queries": queries, "k": 3})
    assert response.status_code == 200
    results = response.json()["results"]
    expected = retrieve.ColBERT(index=client.index).retrieve(
        model.encode(queries, is_query=True), k=3
    )
    assert [[hit["id"] for hit in ranking] for ranking in results] == [
        [hit["id"] for hit in ranking] for ranking in expected
    ]
    for ranking, reference in zip(results, expected):
        np.testing.assert_allclose(
            [hit["score"] for hit in ranking],
            [hit["score"] for hit in reference],
            rtol=1e-5,
        )
    assert results[0][0]["id"] == "paris"
    assert results[1][0]["id"] == "bread"


def test_search_k_above_collection_returns_everything(client):
    response = client.post("/v1/search", json={"queries": ["integer ids"], "k": 50})
    ranking = response.json()["results"][0]
    assert sorted(map(str, (hit["id"] for hit in ranking))) == sorted(
        map(str, DOCUMENTS)
    )
    assert ranking[0]["id"] == 7  # an int id stays an int through JSON
    scores = [hit["score"] for hit in ranking]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"queries": ["a"], "k": 0}, "k"),
        ({"queries": ["a"], "k": "5"}, "k"),
        ({"queries": ["a"], "k": 1.5}, "k"),
        ({"queries": []}, "queries"),
        ({"queries": "a string"}, "queries"),
        ({"queries": ["a"], "extra": 1}, "extra"),
    ],
)
def test_bad_search_requests_name_the_field(client, body, field):
    response = client.post("/v1/search", json=body)
    assert response.status_code == 422
    assert set(_fields(response)) == {field}


def test_malformed_json_is_422_and_server_keeps_serving(client):
    response = client.post(
        "/v1/search",
        content=b'{"queries": [',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    response = client.post("/v1/search", content=b"\xff\xfe", headers={})
    assert 400 <= response.status_code < 500
    assert client.get("/health").status_code == 200


# -- rerank ----------------------------------------------------------------------


def test_rerank_matches_rank_rerank(client, model):
    query = "which city is the capital of france"
    documents = list(DOCUMENTS.values())[:4]
    response = client.post("/v1/rerank", json={"query": query, "documents": documents})
    assert response.status_code == 200
    results = response.json()["results"]
    expected = rank.rerank(
        [list(range(4))],
        model.encode([query], is_query=True),
        [model.encode(documents, is_query=False)],
    )[0]
    assert [hit["id"] for hit in results] == [hit["id"] for hit in expected]
    np.testing.assert_allclose(
        [hit["score"] for hit in results],
        [hit["score"] for hit in expected],
        rtol=1e-5,
    )
    assert results[0]["id"] == 1

    named = client.post(
        "/v1/rerank",
        json={"query": query, "documents": documents, "ids": ["c", "p", "o", 9]},
    ).json()["results"]
    assert [hit["id"] for hit in named] == [
        ["c", "p", "o", 9][hit["id"]] for hit in results
    ]


def test_rerank_ids_must_match_documents(client):
    response = client.post(
        "/v1/rerank", json={"query": "q", "documents": ["a", "b"], "ids": ["x"]}
    )
    assert response.status_code == 422
    assert _fields(response) == ["ids"]


# -- documents -------------------------------------------------------------------


def test_add_search_and_remove_documents(client):
    new = {"dog": "a dog chased the postman down the street"}
    response = client.post(
        "/v1/documents", json={"ids": list(new), "documents": list(new.values())}
    )
    assert response.status_code == 200
    assert response.json() == {"added": 1, "documents": len(DOCUMENTS) + 1}
    assert "dog" in client.index
    hits = client.post(
        "/v1/search", json={"queries": ["dog chased the postman"], "k": 1}
    ).json()["results"][0]
    assert hits[0]["id"] == "dog"

    # Adding an existing id replaces the document.
    response = client.post(
        "/v1/documents", json={"ids": ["dog"], "documents": ["about bread and salt"]}
    )
    assert response.json() == {"added": 1, "documents": len(DOCUMENTS) + 1}

    response = client.request(
        "DELETE", "/v1/documents", json={"ids": ["dog", "cat", "nope"]}
    )
    assert response.status_code == 200
    assert response.json() == {"removed": 2, "documents": len(DOCUMENTS) - 1}
    assert "dog" not in client.index and "cat" not in client.index
    hits = client.post("/v1/search", json={"queries": ["a cat"], "k": 10}).json()
    assert "cat" not in [hit["id"] for hit in hits["results"][0]]


def test_searches_during_writes_see_whole_states(client):
    """Writes alternate two states (with and without "w"); every search sees one."""
    text = "a wandering walrus wrote west"
    base = {str(doc_id) for doc_id in DOCUMENTS}
    errors: list[str] = []

    def write() -> None:
        for _ in range(4):
            for method, body in (
                ("POST", {"ids": ["w"], "documents": [text]}),
                ("DELETE", {"ids": ["w"]}),
            ):
                response = client.request(method, "/v1/documents", json=body)
                if response.status_code != 200:
                    errors.append(f"{method} {response.status_code}")

    def search() -> list[set[str]]:
        seen = []
        for _ in range(6):
            response = client.post("/v1/search", json={"queries": [text], "k": 100})
            if response.status_code != 200:
                errors.append(f"search {response.status_code}")
                continue
            seen.append({str(hit["id"]) for hit in response.json()["results"][0]})
        return seen

    with ThreadPoolExecutor(max_workers=4) as pool:
        writer = pool.submit(write)
        searches = [pool.submit(search) for _ in range(3)]
        writer.result()
        states = [state for future in searches for state in future.result()]
    assert errors == []
    assert states and all(state in (base, base | {"w"}) for state in states)
    assert len(client.index) == len(DOCUMENTS)


class _SlowWriteIndex:
    """An end-to-end index whose writes take time and whose searches notice them."""

    is_end_to_end_index = True

    def __init__(self) -> None:
        self.ids = ["a", "b"]
        self.writing = False
        self.searched_during_write = 0

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, doc_id) -> bool:
        return doc_id in self.ids

    def _write(self, change) -> None:
        self.writing = True
        time.sleep(0.1)  # long enough for searches to arrive meanwhile
        change()
        self.writing = False

    def add_documents(self, documents_ids, documents_embeddings):
        self._write(lambda: self.ids.extend(documents_ids))

    def remove_documents(self, documents_ids):
        self._write(lambda: [self.ids.remove(i) for i in documents_ids])

    def __call__(self, queries_embeddings, k=10, subset=None):
        self.searched_during_write += self.writing
        time.sleep(0.05)
        self.searched_during_write += self.writing
        return [
            [{"id": i, "score": 1.0} for i in self.ids[:k]] for _ in queries_embeddings
        ]


class _InstantModel:
    """Encodes in no time, so the test's timing is the index's alone."""

    def encode(self, texts, **kwargs):
        return [np.ones((3, 4), dtype=np.float32) for _ in texts]


def test_write_lock_keeps_searches_out_of_writes():
    index = _SlowWriteIndex()
    app = create_app(_InstantModel(), ServerConfig(model_name="m"), index=index)
    with TestClient(app) as test_client:

        def write() -> None:
            for n in range(5):
                body = {"ids": [f"n{n}"], "documents": ["x"]}
                assert test_client.post("/v1/documents", json=body).status_code == 200
            body = {"ids": [f"n{n}" for n in range(5)]}
            assert (
                test_client.request("DELETE", "/v1/documents", json=body).json()[
                    "removed"
                ]
                == 5
            )

        def search() -> None:
            for _ in range(15):
                body = {"queries": ["q"], "k": 100}
                assert test_client.post("/v1/search", json=body).status_code == 200

        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(write)] + [pool.submit(search) for _ in range(3)]
            for future in futures:
                future.result()
    assert index.ids == ["a", "b"]
    assert index.searched_during_write == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ids": ["a", "b"], "documents": ["x"]}, "ids"),
        ({"ids": ["a", "a"], "documents": ["x", "y"]}, "ids"),
        ({"ids": [], "documents": []}, "ids"),
        ({"ids": [True], "documents": ["x"]}, "ids"),
        ({"ids": ["a"], "documents": [None]}, "documents"),
    ],
)
def test_bad_document_writes_change_nothing(client, body, field):
    response = client.post("/v1/documents", json=body)
    assert response.status_code == 422
    assert field in _fields(response)
    assert len(client.index) == len(DOCUMENTS)


def test_openapi_schema_lists_the_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/health",
        "/v1/embeddings",
        "/v1/search",
        "/v1/rerank",
        "/v1/documents",
        "/v1/documents/get",
    }
    assert set(paths["/v1/documents"]) == {"post", "delete"}
    assert set(paths["/v1/documents/get"]) == {"post"}


def test_routes_without_index_are_404(model, model_dir):
    app = create_app(model, ServerConfig(model_name=model_dir))
    with TestClient(app) as test_client:
        assert test_client.get("/health").json() == {
            "status": "ok",
            "model": model_dir,
            "documents": None,
        }
        response = test_client.post("/v1/search", json={"queries": ["a"]})
        assert response.status_code == 404
        assert "--index" in response.json()["detail"]
        response = test_client.post(
            "/v1/documents", json={"ids": ["a"], "documents": ["x"]}
        )
        assert response.status_code == 404


# -- limits and keys -------------------------------------------------------------


def test_body_over_limit_is_413_before_parsing(model, model_dir):
    config = ServerConfig(model_name=model_dir, max_body_mb=0.01)  # 10 KiB
    with TestClient(create_app(model, config)) as test_client:
        big = json.dumps({"input": ["word " * 3000], "model": model_dir})
        response = test_client.post(
            "/v1/embeddings",
            content=big,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 413
        assert "--max-body-mb" in response.json()["detail"]

        def chunks():  # no Content-Length: counted while it arrives
            for _ in range(20):
                yield b" " * 1024

        response = test_client.post(
            "/v1/embeddings",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 413
        small = test_client.post(
            "/v1/embeddings", json={"input": ["fits"], "model": model_dir}
        )
        assert small.status_code == 200
        assert test_client.app.app.state.batcher.batches >= 1


def test_api_key_guards_every_route_but_health(model, model_dir, tmp_path):
    config = ServerConfig(model_name=model_dir, api_key="s3cret")
    app = create_app(model, config, index=_voyager(tmp_path, model))
    body = {"input": ["x"], "model": model_dir}
    with TestClient(app) as test_client:
        assert test_client.get("/health").status_code == 200
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "s3cret"},
        ):
            response = test_client.post("/v1/embeddings", json=body, headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            response = test_client.post(
                "/v1/search", json={"queries": ["x"]}, headers=headers
            )
            assert response.status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert (
            test_client.post("/v1/embeddings", json=body, headers=good).status_code
            == 200
        )
        response = test_client.post("/v1/search", json={"queries": ["x"]}, headers=good)
        assert response.status_code == 200


# -- batching and locking ----------------------------------------------------------


def test_micro_batcher_merges_concurrent_requests():
    calls: list[tuple[int, bool]] = []

    def encode(texts, is_query):
        calls.append((len(texts), is_query))
        time.sleep(0.02)  # a forward pass
        return [np.full((2, 3), len(text), dtype=np.float32) for text in texts]

    async def scenario():
        batcher = MicroBatcher(encode, max_texts=256, wait_ms=5)
        await batcher.start()
        texts = ["x" * (i + 1) for i in range(64)]
        results = await asyncio.gather(
            *(
                batcher.encode([text], is_query=i % 2 == 0)
                for i, text in enumerate(texts)
            )
        )
        await batcher.stop()
        return texts, results

    texts, results = asyncio.run(scenario())
    for text, result in zip(texts, results):
        assert len(result) == 1 and result[0][0, 0] == len(text)
    assert sum(size for size, _ in calls) == 64
    assert len(calls) <= 4  # 64 requests, queries and documents: 2 to 4 batches
    assert {is_query for _, is_query in calls} == {True, False}


def test_micro_batcher_reports_encode_errors_to_each_request():
    def encode(texts, is_query):
        raise RuntimeError("boom")

    async def scenario():
        batcher = MicroBatcher(encode, wait_ms=1)
        await batcher.start()
        outcomes = await asyncio.gather(
            batcher.encode(["a"], True),
            batcher.encode(["b"], True),
            return_exceptions=True,
        )
        await batcher.stop()
        return outcomes

    outcomes = asyncio.run(scenario())
    assert [str(error) for error in outcomes] == ["boom", "boom"]


def test_rwlock_writer_excludes_readers():
    events: list[str] = []

    async def reader(name: str, lock: ReadWriteLock):
        async with lock.read():
            events.append(f"{name}+")
            await asyncio.sleep(0.02)
            events.append(f"{name}-")

    async def writer(lock: ReadWriteLock):
        await asyncio.sleep(0.005)
        async with lock.write():
            events.append("W+")
            await asyncio.sleep(0.02)
            events.append("W-")

    async def scenario():
        lock = ReadWriteLock()
        await asyncio.gather(reader("a", lock), reader("b", lock), writer(lock))
        # A reader arriving while the writer waits goes after it.
        await asyncio.gather(writer(lock), reader("c", lock))

    asyncio.run(scenario())
    first = events[:6]
    assert first[:2] == ["a+", "b+"]  # readers share
    assert first.index("W+") > max(first.index("a-"), first.index("b-"))
    assert first[first.index("W+") + 1] == "W-"  # nothing inside the write


# -- a real uvicorn process --------------------------------------------------------


def _start_server(args: list[str], env: dict | None = None):
    """Start the server on a free port; return (process, base_url)."""
    command = [
        sys.executable,
        "-m",
        "pylate_clone.server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *args,
    ]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=full_env,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 180
    url = None
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if match:
            url = match.group(1)
            break
    if url is None:
        process.kill()
        raise AssertionError("server did not start:\n" + "".join(lines))
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("server never answered /health")


def _stop_server(process: subprocess.Popen) -> str:
    """SIGTERM the server, wait for it (killed after 60 s); return its stderr."""
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return stderr


@pytest.mark.slow
def test_real_server_concurrency_and_sigterm(model, model_dir, tmp_path):
    _voyager(tmp_path, model)
    process, url = _start_server(
        [
            "--model",
            model_dir,
            "--index",
            str(tmp_path),
            "--index-name",
            "docs",
            "--api-key",
            "k1",
        ]
    )
    try:
        headers = {"Authorization": "Bearer k1"}
        health = httpx.get(f"{url}/health").json()
        assert health == {
            "status": "ok",
            "model": model_dir,
            "documents": len(DOCUMENTS),
        }
        texts = [f"query number {i} about wings and bread" for i in range(64)]

        def one(text: str):
            return httpx.post(
                f"{url}/v1/embeddings",
                json={"input": [text], "model": model_dir},
                headers=headers,
                timeout=120,
            )

        with ThreadPoolExecutor(max_workers=64) as pool:
            responses = list(pool.map(one, texts))
        assert [r.status_code for r in responses] == [200] * 64
        expected = model.encode(texts, is_query=True)
        for response, reference in zip(responses, expected):
            got = np.asarray(response.json()["data"][0]["embedding"])
            np.testing.assert_allclose(got, reference, atol=1e-5)

        search = httpx.post(
            f"{url}/v1/search",
            json={"queries": ["capital of france"], "k": 2},
            headers=headers,
            timeout=60,
        )
        assert search.json()["results"][0][0]["id"] == "paris"
        assert (
            httpx.post(f"{url}/v1/search", json={"queries": ["x"]}).status_code == 401
        )
        big = httpx.post(
            f"{url}/v1/embeddings",
            content=b"x" * (3 * 1024 * 1024),
            headers={**headers, "content-type": "application/json"},
            timeout=60,
        )
        assert big.status_code == 413
        assert httpx.get(f"{url}/health").status_code == 200
    finally:
        stderr = _stop_server(process)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "Finished server process" in stderr or "Shutting down" in stderr


@pytest.mark.slow
def test_server_startup_errors_are_one_line(model_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cases = [
        ["--model", str(tmp_path / "no-such-model")],
        ["--model", model_dir, "--index", str(tmp_path), "--index-name", "none"],
        ["--model", model_dir, "--max-batch", "0"],
        ["--model", model_dir, "--port", "notaport"],
    ]
    for args in cases:
        result = subprocess.run(
            [sys.executable, "-m", "pylate_clone.server", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=180,
        )
        assert result.returncode == 2, (args, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "error" in lines[0], (args, result.stderr)
        assert "Traceback" not in result.stderr
