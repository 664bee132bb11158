"""Documents and metadata beside the index: store, filters, hybrid, texts in results.

Real SQLite files in real index folders, for the three kinds that store them
(Exact, PLAID, Voyager).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from pylate_clone import indexes, retrieve
from pylate_clone.indexes.engine import search as engine_search
from pylate_clone.indexes.storage.documents import DOCUMENTS, keyword_query
from pylate_clone.indexes.storage.filters import compile_filter
from pylate_clone.retrieve.fusion import reciprocal_rank, relative_score
from tests.test_indexes import make_index, unit_docs

KINDS = ("exact", "plaid", "voyager")
N = 60
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")


def corpus(n: int = N, seed: int = 3):
    ids = [f"d{i}" for i in range(n)]
    docs = unit_docs(n, seed=seed)
    texts = [
        f"document {i} {WORDS[i % 6]} {WORDS[(i * 7) % 6]} zz{i}" for i in range(n)
    ]
    meta = [
        {
            "n": i,
            "year": 2000 + i % 25,
            "lang": "en" if i % 3 else "fr",
            "score": i / 10,
            "flag": i % 2 == 0,
            "tags": [WORDS[i % 6], "all"] if i % 4 else [],
            "nested": {"level": i % 5},
        }
        for i in range(n)
    ]
    return ids, docs, texts, meta


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """One index of each kind with texts and metadata (read-only in tests)."""
    ids, docs, texts, meta = corpus()
    out = {}
    for kind in KINDS:
        folder = tmp_path_factory.mktemp(f"docs-{kind}")
        index = make_index(kind, folder)
        index.add_documents(
            ids[:40], docs[:40], documents=texts[:40], metadata=meta[:40]
        )
        index.add_documents(
            ids[40:], docs[40:], documents=texts[40:], metadata=meta[40:]
        )
        out[kind] = (index, folder)
    return out


def expected(meta, predicate):
    return sorted(f"d{m['n']}" for m in meta if predicate(m))


FILTERS = [
    ({"lang": "fr"}, lambda m: m["lang"] == "fr"),
    ({"lang": {"$eq": "en"}}, lambda m: m["lang"] == "en"),
    ({"lang": {"$ne": "en"}}, lambda m: m["lang"] != "en"),
    ({"year": {"$gt": 2020}}, lambda m: m["year"] > 2020),
    ({"year": {"$gte": 2020}}, lambda m: m["year"] >= 2020),
    ({"year": {"$lt": 2003}}, lambda m: m["year"] < 2003),
    ({"year": {"$lte": 2003, "$gt": 2001}}, lambda m: 2001 < m["year"] <= 2003),
    ({"score": {"$gte": 2.5}}, lambda m: m["score"] >= 2.5),
    ({"n": {"$in": [1, 5, 7, 999]}}, lambda m: m["n"] in (1, 5, 7)),
    ({"n": {"$nin": [1, 5, 7]}}, lambda m: m["n"] not in (1, 5, 7)),
    ({"flag": True}, lambda m: m["flag"]),
    ({"tags": {"$contains": "bravo"}}, lambda m: "bravo" in m["tags"]),
    ({"nested.level": 2}, lambda m: m["nested"]["level"] == 2),
    (
        {"$and": [{"lang": "en"}, {"year": {"$lt": 2005}}]},
        lambda m: m["lang"] == "en" and m["year"] < 2005,
    ),
    (
        {"$or": [{"n": 3}, {"tags": {"$contains": "echo"}}]},
        lambda m: m["n"] == 3 or "echo" in m["tags"],
    ),
    ({"$not": {"lang": "en"}}, lambda m: m["lang"] != "en"),
    # Several keys at one level are ANDed.
    ({"lang": "en", "flag": False}, lambda m: m["lang"] == "en" and not m["flag"]),
    # Types do not mix: the number 1 is not True, the string "2001" not 2001.
    ({"flag": 1}, lambda m: False),
    ({"year": "2001"}, lambda m: False),
    # A key no document has matches nothing, $ne and $nin included.
    ({"missing": {"$ne": 1}}, lambda m: False),
    ({"missing": {"$nin": [1]}}, lambda m: False),
    ({"$not": {"missing": 1}}, lambda m: False),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", range(len(FILTERS)))
def test_filter_operators_select_exactly_the_matching_documents(filled, kind, case):
    index, _ = filled[kind]
    filter, predicate = FILTERS[case]
    _, _, _, meta = corpus()
    assert sorted(index.filter_ids(filter)) == expected(meta, predicate)


@pytest.mark.parametrize("kind", KINDS)
def test_filtered_search_returns_the_exact_best_of_the_matching_documents(filled, kind):
    index, _ = filled[kind]
    ids, docs, _, meta = corpus()
    queries = [docs[5], docs[22], docs[51]]
    retriever = retrieve.ColBERT(index)
    filter = {"lang": "en", "year": {"$gte": 2005}}
    allowed = set(expected(meta, lambda m: m["lang"] == "en" and m["year"] >= 2005))
    found = retriever.retrieve(queries, k=5, filter=filter)
    exact = retrieve.ColBERT(index).retrieve(queries, k=5, subset=sorted(allowed))
    for hits, reference in zip(found, exact):
        assert {h["id"] for h in hits} <= allowed
        assert [h["id"] for h in hits] == [h["id"] for h in reference]
    # A document searched with its own vectors is found when it matches.
    assert found[1][0]["id"] == "d22"
    # filter AND subset: only the allowed ids of the subset.
    both = retriever.retrieve(queries, k=5, filter=filter, subset=["d22", "d21", "d3"])
    assert [h["id"] for h in both[1]] == ["d22"]
    assert all({h["id"] for h in hits} <= {"d22"} for hits in both)
    # No match: empty results, not an error.
    assert retriever.retrieve(queries, k=5, filter={"lang": "de"}) == [[], [], []]


@pytest.mark.parametrize("kind", KINDS)
def test_get_documents_and_return_documents(filled, kind):
    index, _ = filled[kind]
    ids, docs, texts, meta = corpus()
    got = index.get_documents(["d7", 99, "d0"])
    assert got[0] == {"id": "d7", "document": texts[7], "metadata": meta[7]}
    assert got[1] == {"id": 99, "document": None, "metadata": None}
    assert got[2]["metadata"]["tags"] == []
    hits = retrieve.ColBERT(index).retrieve([docs[9]], k=3, return_documents=True)
    top = hits[0][0]
    assert top["id"] == "d9" and top["document"] == texts[9]
    assert top["metadata"] == meta[9]


@pytest.mark.parametrize("kind", KINDS)
def test_hybrid_fusion_brings_keyword_matches(filled, kind):
    index, _ = filled[kind]
    ids, docs, texts, _ = corpus()
    retriever = retrieve.ColBERT(index)
    # The vectors of d3 and the unique word of d41: both ends must rank high.
    for fusion in ("rrf", "relative"):
        hits = retriever.retrieve(
            [docs[3]], k=3, queries=["zz41"], hybrid=True, fusion=fusion, alpha=0.5
        )[0]
        assert {h["id"] for h in hits[:2]} == {"d3", "d41"}
    # BM25 alone: the unique word ranks its document first.
    assert index.keyword_search(["zz41 and the"], 2)[0][0]["id"] == "d41"
    assert index.keyword_search(["the and"], 2) == [[]]
    # Hybrid respects the filter on both sides.
    hits = retriever.retrieve(
        [docs[3]], k=5, queries=["zz41"], hybrid=True, filter={"n": {"$gt": 41}}
    )[0]
    assert hits and all(int(h["id"][1:]) > 41 for h in hits)
    # alpha=1 is ColBERT's order, alpha=0 BM25's first.
    dense = retriever.retrieve([docs[3]], k=3)[0]
    only_dense = retriever.retrieve(
        [docs[3]], k=3, queries=["zz41"], hybrid=True, fusion="relative", alpha=1.0
    )[0]
    assert [h["id"] for h in only_dense] == [h["id"] for h in dense]
    only_words = retriever.retrieve(
        [docs[3]], k=1, queries=["zz41"], hybrid=True, fusion="relative", alpha=0.0
    )[0]
    assert only_words[0]["id"] == "d41"


def test_fusion_arithmetic():
    dense = [
        {"id": "a", "score": 10.0},
        {"id": "b", "score": 8.0},
        {"id": "c", "score": 6.0},
    ]
    words = [{"id": "c", "score": 3.0}, {"id": "d", "score": 1.0}]
    rrf = reciprocal_rank([dense, words], 4)
    assert rrf[0] == {"id": "c", "score": pytest.approx(1 / 63 + 1 / 61)}
    assert [h["id"] for h in rrf] == ["c", "a", "d", "b"] or [h["id"] for h in rrf] == [
        "c",
        "a",
        "b",
        "d",
    ]
    assert rrf[1]["score"] == pytest.approx(1 / 61)
    rel = relative_score(dense, words, 0.25, 4)
    scores = {h["id"]: h["score"] for h in rel}
    assert scores == pytest.approx({"a": 0.25, "b": 0.125, "c": 0.75, "d": 0.0})


@pytest.mark.parametrize(
    "filter,part",
    [
        ({"year": {"$gte": [2020]}}, "filter['year']['$gte']"),
        ({"year": {"$between": 1}}, "filter['year']['$between']"),
        ({"$and": {"a": 1}}, "filter['$and']"),
        ({"$and": [{"a": 1}, 5]}, "filter['$and'][1]"),
        ({"$xor": [{"a": 1}]}, "filter['$xor']"),
        ({"a": {"$in": []}}, "filter['a']['$in']"),
        ({"a": {"$in": [1, {"b": 2}]}}, "filter['a']['$in'][1]"),
        ({"a": None}, "filter['a']"),
        ({"a": float("nan")}, "filter['a']"),
        ({"a": {}}, "filter['a']"),
        ({}, "filter"),
        ({"bad key": 1}, "filter['bad key']"),
        ({"x'); DROP TABLE documents; --": 1}, "DROP TABLE"),
        ({'a"."b': 1}, "filter['a\"."),
        ({"$not": [{"a": 1}]}, "filter['$not']"),
    ],
)
def test_malformed_filters_name_the_part(filter, part):
    with pytest.raises(ValueError) as error:
        compile_filter(filter)
    assert part in str(error.value)


@pytest.mark.parametrize("kind", KINDS)
def test_injection_through_keys_and_values_is_data(filled, kind, tmp_path):
    index, folder = filled[kind]
    retriever = retrieve.ColBERT(index)
    docs = corpus()[1]
    for key in ("x'); DROP TABLE documents; --", "a) OR 1=1 --", "a'", '"a"'):
        with pytest.raises(ValueError, match="not a metadata key"):
            retriever.retrieve([docs[0]], k=3, filter={key: 1})
    # Values with quotes and SQL travel as parameters: they match nothing here.
    for value in ("en' OR '1'='1", 'en" OR 1=1 --', "'); DROP TABLE documents; --"):
        assert index.filter_ids({"lang": value}) == []
        assert index.filter_ids({"tags": {"$contains": value}}) == []
        assert retriever.retrieve([docs[0]], k=3, filter={"lang": value}) == [[]]
    # FTS5 syntax in a keyword query is quoted words, never FTS5 operators.
    assert keyword_query('a" OR NEAR(x) * -') == '"near" OR "x"'
    assert index.keyword_search(['zz7" OR "zz8'], 5)[0][0]["id"] in ("d7", "d8")
    # The documents are all still there, in every segment's file.
    assert len(index.filter_ids({"n": {"$gte": 0}})) == N
    for db in Path(folder).rglob(DOCUMENTS):
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            assert connection.execute("SELECT count(*) FROM documents").fetchone()[0]


@pytest.mark.parametrize("kind", KINDS)
def test_documents_follow_reopen_update_remove_merge_compact(kind, tmp_path):
    ids, docs, texts, meta = corpus(24)
    index = make_index(kind, tmp_path)
    index.add_documents(ids[:12], docs[:12], documents=texts[:12], metadata=meta[:12])
    # A second segment without texts; a third with metadata only.
    index.add_documents(ids[12:18], docs[12:18])
    index.add_documents(ids[18:], docs[18:], metadata=meta[18:])
    reopened = make_index(kind, tmp_path)
    assert reopened.get_documents(["d3"])[0]["document"] == texts[3]
    assert reopened.get_documents(["d13"])[0] == {
        "id": "d13",
        "document": None,
        "metadata": None,
    }
    assert reopened.get_documents(["d20"])[0]["metadata"] == meta[20]
    assert sorted(reopened.filter_ids({"lang": "fr"})) == [
        "d0",
        "d18",
        "d21",
        "d3",
        "d6",
        "d9",
    ]
    # update_documents: vectors only keeps text and metadata; metadata only
    # replaces it and keeps the text.
    reopened.update_documents(["d3"], [docs[4]])
    assert reopened.get_documents(["d3"])[0] == {
        "id": "d3",
        "document": texts[3],
        "metadata": meta[3],
    }
    reopened.update_documents(
        ["d3", "d13"], [docs[3], docs[13]], metadata=[{"lang": "de"}, None]
    )
    assert reopened.get_documents(["d3"])[0] == {
        "id": "d3",
        "document": texts[3],
        "metadata": {"lang": "de"},
    }
    assert reopened.filter_ids({"lang": "de"}) == ["d3"]
    # add_documents of an existing id replaces everything.
    reopened.add_documents(["d6"], [docs[6]], documents=["new text"])
    assert reopened.get_documents(["d6"])[0] == {
        "id": "d6",
        "document": "new text",
        "metadata": None,
    }
    reopened.remove_documents(["d9", "d0"])
    assert sorted(index.filter_ids({"lang": "fr"})) == ["d18", "d21"]
    assert index.get_documents(["d9"])[0]["document"] is None
    assert index.keyword_search(["zz9"], 3) == [[]]
    for step in ("merge", "compact"):
        before = index.num_segments
        if step == "merge":
            index.max_segments = 1
            index.merge()
        else:
            index.compact()
            assert index.num_segments == 1
        assert index.num_segments < before
        assert sorted(index.filter_ids({"lang": "fr"})) == ["d18", "d21"]
        assert index.get_documents(["d3", "d13", "d20", "d6"]) == [
            {"id": "d3", "document": texts[3], "metadata": {"lang": "de"}},
            {"id": "d13", "document": None, "metadata": None},
            {"id": "d20", "document": None, "metadata": meta[20]},
            {"id": "d6", "document": "new text", "metadata": None},
        ]
        assert index.keyword_search(["zz5"], 1)[0][0]["id"] == "d5"
        assert len(index) == 22


@pytest.mark.parametrize("kind", KINDS)
def test_indexes_without_documents_create_no_database(kind, tmp_path):
    ids, docs, _, _ = corpus(10)
    index = make_index(kind, tmp_path)
    index.add_documents(ids, docs)
    assert not list(Path(tmp_path).rglob(DOCUMENTS))
    assert not index.has_documents
    assert index.filter_ids({"lang": "en"}) == []
    assert index.get_documents(["d1"]) == [
        {"id": "d1", "document": None, "metadata": None}
    ]
    assert retrieve.ColBERT(index).retrieve([docs[1]], k=2, filter={"n": 1}) == [[]]


def test_bad_documents_arguments_name_the_argument(tmp_path):
    ids, docs, texts, meta = corpus(4)
    index = make_index("exact", tmp_path)
    with pytest.raises(ValueError, match="documents has 3 entries for 4"):
        index.add_documents(ids, docs, documents=texts[:3])
    with pytest.raises(TypeError, match=r"metadata\[2\] must be a dict"):
        index.add_documents(ids, docs, metadata=[{}, {}, "x", {}])
    with pytest.raises(ValueError, match=r"metadata\[1\] is not JSON-able"):
        index.add_documents(ids, docs, metadata=[{}, {"a": float("nan")}, {}, {}])
    with pytest.raises(TypeError, match=r"documents\[0\] must be a str"):
        index.add_documents(ids, docs, documents=[1, "a", "b", "c"])
    with pytest.raises(TypeError, match="documents must be a list"):
        index.add_documents(ids, docs, documents="one text")
    assert len(index) == 0 and not list(Path(tmp_path).rglob(DOCUMENTS))
    index.add_documents(ids, docs, documents=texts)
    retriever = retrieve.ColBERT(index)
    with pytest.raises(ValueError, match="queries must be the list of query texts"):
        retriever.retrieve([docs[0]], k=2, hybrid=True)
    with pytest.raises(ValueError, match="queries has 1 texts for 2"):
        retriever.retrieve(docs[:2], k=2, hybrid=True, queries=["a"])
    with pytest.raises(ValueError, match="fusion must be one of"):
        retriever.retrieve([docs[0]], k=2, hybrid=True, queries=["a"], fusion="max")
    with pytest.raises(ValueError, match="alpha must be"):
        retriever.retrieve([docs[0]], k=2, hybrid=True, queries=["a"], alpha=2)
    with pytest.raises(ValueError, match="only used with hybrid=True"):
        retriever.retrieve([docs[0]], k=2, queries=["a"])
    with pytest.raises(TypeError, match="filter must be a dict"):
        index([docs[0]], k=2, filter="lang = 'en'")


@pytest.mark.parametrize("device", [None, "cpu"], ids=["token-stage", "torch"])
def test_filtered_plaid_ivf_path_keeps_recall(tmp_path, monkeypatch, device):
    """Force the IVF path (no exact scan): widened probing keeps recall@10."""
    n = 1500
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((40, 16)).astype(np.float32)
    docs = []
    for i in range(n):
        m = centers[rng.integers(0, 40, 6)] + 0.3 * rng.standard_normal((6, 16))
        docs.append((m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32))
    ids = list(range(n))
    meta = [{"bucket": i % 100} for i in range(n)]
    plaid = indexes.PLAID(
        index_folder=tmp_path / "p", device=device, show_progress=False,
        n_full_scores=128, n_ivf_probe=8,
    )  # fmt: skip
    plaid.add_documents(ids, docs, metadata=meta)
    exact = make_index("exact", tmp_path / "e")
    exact.add_documents(ids, docs, metadata=meta)
    monkeypatch.setattr(
        engine_search, "prefer_exact", lambda tokens, rescored=None: False
    )
    queries = [docs[i][:4] for i in range(0, 300, 15)]
    for share in (1, 10, 50):
        filter = {"bucket": {"$lt": share}}
        got = plaid(queries, k=10, filter=filter)
        ref = exact(queries, k=10, filter=filter)
        recall = np.mean(
            [
                len({h["id"] for h in g} & {h["id"] for h in r}) / len(r)
                for g, r in zip(got, ref)
            ]
        )
        assert recall >= 0.95, (share, recall)
        assert all(h["id"] % 100 < share for hits in got for h in hits)


def test_store_is_one_file_per_segment_with_the_rows(tmp_path):
    ids, docs, texts, meta = corpus(6)
    index = make_index("exact", tmp_path)
    index.add_documents(
        ids, docs, documents=[None, *texts[1:]], metadata=[None, None, *meta[2:]]
    )
    (db,) = Path(tmp_path).rglob(DOCUMENTS)
    manifest = json.loads((db.parent.parent / "manifest.json").read_text())
    assert DOCUMENTS in manifest["segments"][0]["files"]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT row, document, metadata FROM documents"
        ).fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]  # row 0 stored nothing
    assert rows[0][2] is None and json.loads(rows[1][2]) == meta[2]


def test_voyager_call_keeps_tokens_of_matching_documents(filled):
    index, _ = filled["voyager"]
    docs = corpus()[1]
    hits = index([docs[4], docs[30]], k=5, filter={"lang": "fr"})
    allowed = set(index.filter_ids({"lang": "fr"}))
    sizes = [len(token) for per_query in hits["documents_ids"] for token in per_query]
    assert max(sizes) == 5 and min(sizes) >= 1
    assert sum(size == 5 for size in sizes) >= 0.8 * len(sizes)
    for per_query in hits["documents_ids"]:
        assert all(set(token) <= allowed for token in per_query)
    # d30 is French: its own tokens are its nearest allowed neighbours.
    assert hits["documents_ids"][1][0][0] == "d30"
    assert all(np.all(np.diff(d) >= 0) for d in hits["distances"][0])


def test_widened_probe_grows_with_the_selectivity_within_bounds():
    from pylate_clone.indexes.segmented.documents import widened_probe

    assert widened_probe(8, 1.0, 4096) == 8
    assert widened_probe(8, 0.5, 4096) == 16
    assert widened_probe(8, 0.1, 4096) == 80
    assert widened_probe(8, 0.001, 4096) == 128  # at most 16 times
    assert widened_probe(8, 0.01, 50) == 50  # at most the codebook
    # The token stage's cube root: 10% -> 2.15x, 0.1% -> 10x, 0.001% capped.
    assert widened_probe(8, 0.1, 4096, power=1 / 3) == 18
    assert widened_probe(8, 0.001, 4096, power=1 / 3) == 80
    assert widened_probe(8, 1e-5, 4096, power=1 / 3) == 128


def test_filtered_plaid_widens_its_probe_by_its_search_stage(tmp_path, monkeypatch):
    """The CPU path (token stage) widens by the cube root, torch by 1 / s."""
    from pylate_clone.indexes import plaid as plaid_module

    ids, docs, _, meta = corpus(60)
    seen = []
    original = plaid_module.widened_probe

    def spy(probe, share, num_centroids, power=1.0):
        seen.append((share, power))
        return original(probe, share, num_centroids, power)

    monkeypatch.setattr(plaid_module, "widened_probe", spy)
    monkeypatch.setattr(
        engine_search, "prefer_exact", lambda tokens, rescored=None: False
    )
    # device None: numba and the token stage; "cpu": the torch path.
    for device, power in ((None, 1 / 3), ("cpu", 1.0)):
        index = indexes.PLAID(
            index_folder=tmp_path / str(device), device=device, show_progress=False
        )
        index.add_documents(ids, docs, metadata=meta)
        seen.clear()
        index([docs[0]], k=3, filter={"lang": "fr"})
        share = len(index.filter_ids({"lang": "fr"})) / len(ids)
        assert seen == [(pytest.approx(share), pytest.approx(power))], device


@pytest.mark.parametrize("kind", ["plaid", "exact"])
def test_a_filter_or_subset_matching_everything_searches_unfiltered(tmp_path, kind):
    """Every live row allowed: the engine gets no allowed rows (None), same hits."""
    ids, docs, _, meta = corpus(40)
    index = make_index(kind, tmp_path)
    index.add_documents(ids, docs, metadata=meta)
    index.remove_documents(["d3"])
    seen = []
    original = index._search_hits

    def spy(queries, k, allowed):
        seen.append(allowed)
        return original(queries, k, allowed)

    index._search_hits = spy
    plain = index([docs[5]], k=5)
    everything = index([docs[5]], k=5, filter={"n": {"$gte": 0}})
    live = [i for i in ids if i != "d3"]
    subset = index([docs[5]], k=5, subset=live)
    assert seen == [None, None, None]
    assert plain == everything == subset
    # One live row fewer: the rows go to the engine.
    seen.clear()
    index([docs[5]], k=5, subset=live[1:])
    index([docs[5]], k=5, filter={"n": {"$gte": 1}})
    assert [sum(len(rows) for rows in a) for a in seen] == [38, 38]
