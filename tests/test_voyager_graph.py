"""Voyager's graph layout: a strided 8-bit graph, old folders, graph reuse in merges."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pylate_clone import indexes, retrieve
from pylate_clone.indexes.engine.hnsw import sampled_rows
from pylate_clone.indexes.tuning import recall_at_k
from tests.test_indexes import exact, top_ids, unit_docs

FIXTURE = Path(__file__).parent / "fixtures" / "voyager_format2"
DIM = 32


def topic_docs(n_docs: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Documents whose tokens cluster around a few topics each, and queries.

    ColBERT token vectors of one document share a few directions; a query
    asks about the topics of one document (with noise of its own).
    """
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((96, DIM)).astype(np.float32)

    def tokens(mix: np.ndarray, count: int, noise: float) -> np.ndarray:
        picks = topics[rng.choice(mix, size=count)]
        m = picks + noise * rng.standard_normal((count, DIM)).astype(np.float32)
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    mixes = [rng.choice(len(topics), size=3, replace=False) for _ in range(n_docs)]
    docs = [tokens(mix, int(rng.integers(20, 60)), 0.6) for mix in mixes]
    queries = [tokens(mixes[i], 8, 0.7) for i in range(0, n_docs, n_docs // 30)]
    return docs, queries


def _voyager(folder: Path, **kwargs) -> indexes.Voyager:
    return indexes.Voyager(
        index_folder=folder,
        embedding_size=kwargs.pop("dim", DIM),
        show_progress=False,
        **kwargs,
    )


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "colbert" / "manifest.json").read_text())


def test_sampled_rows_keep_every_stride_th_token_of_each_document():
    rows = sampled_rows(np.array([4, 1, 7]), first_row=10, stride=3)
    # Documents start at rows 10, 14 and 15.
    assert rows.tolist() == [10, 13, 14, 15, 18, 21]
    assert sampled_rows(np.array([2, 2]), 0, 1).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "settings,floor",
    [
        ({}, 0.95),
        ({"graph_storage": "e4m3"}, 0.95),
        ({"graph_storage": "float32", "graph_stride": 1}, 0.95),
        # Control: a graph over every 20th token misses documents.
        ({"graph_stride": 20}, None),
    ],
)
def test_recall_against_exact_maxsim(settings, floor, tmp_path):
    docs, queries = topic_docs(600, seed=5)
    ids = list(range(len(docs)))
    index = _voyager(tmp_path, **settings)
    index.add_documents(ids, docs)
    got = retrieve.ColBERT(index=index).retrieve(queries, k=10, k_token=32)
    recall = recall_at_k(top_ids(got), top_ids(exact(ids, docs, queries)), 10)
    if floor is None:
        assert recall < 0.9, recall
    else:
        assert recall >= floor, recall
    record = json.loads(
        next((tmp_path / "colbert").glob("seg-*/graph.json")).read_text()
    )
    assert record["graph_stride"] == settings.get("graph_stride", 3)
    assert record["graph_storage"] == settings.get("graph_storage", "float8")


def test_default_graph_is_a_third_of_the_tokens_in_8_bits(tmp_path):
    docs, _ = topic_docs(200, seed=6)
    index = _voyager(tmp_path)
    index.add_documents(list(range(len(docs))), docs)
    folder = next((tmp_path / "colbert").glob("seg-*"))
    graph = index._segments[0].extra["graph"]
    assert graph.num_elements == sum(-(-len(d) // 3) for d in docs)
    assert "Float8" in repr(graph)
    assert np.load(folder / "tokens.npy", mmap_mode="r").dtype == np.float16
    # A float32 graph over every token: three times the nodes, each with four
    # times the vector bytes (and the same links: 2M neighbours at level 0).
    full = _voyager(tmp_path / "full", graph_stride=1, graph_storage="float32")
    full.add_documents(list(range(len(docs))), docs)
    full_file = next((tmp_path / "full" / "colbert").glob("seg-*/index.voyager"))
    assert (folder / "index.voyager").stat().st_size * 4 < full_file.stat().st_size


def _fixture_docs() -> tuple[list[str], list[np.ndarray]]:
    """The vectors tests/fixtures/voyager_format2 was written with (its README)."""
    rng = np.random.default_rng(19)
    docs = []
    for _ in range(30):
        m = rng.standard_normal((int(rng.integers(5, 12)), 16)).astype(np.float32)
        docs.append(m / np.linalg.norm(m, axis=1, keepdims=True))
    return [f"v{i}" for i in range(30)], docs


def test_first_layout_folder_opens_searches_and_compacts(tmp_path):
    shutil.copytree(FIXTURE / "colbert", tmp_path / "colbert")
    ids, docs = _fixture_docs()
    live = [i for i in ids if i != "v3"]
    index = _voyager(tmp_path, dim=16)
    assert sorted(index.documents_ids) == sorted(live)
    assert index.M == 64 and index.ef_construction == 200  # recorded values win
    retriever = retrieve.ColBERT(index=index)
    own = [docs[ids.index(i)] for i in live]
    # Old segments keep their float32 store: scores are exact.
    got = retriever.retrieve(own[:6], k=3)
    ref = exact(live, own, own[:6], k=3)
    assert top_ids(got) == top_ids(ref)
    np.testing.assert_allclose(
        [r["score"] for g in got for r in g],
        [r["score"] for g in ref for r in g],
        atol=1e-4,
    )
    # A new segment in an old folder is written in the current layout.
    extra = unit_docs(3, dim=16, seed=7)
    index.add_documents(["w0", "w1", "w2"], extra)
    assert _manifest(tmp_path)["params"]["graph_stride"] == 3
    assert [r[0]["id"] for r in retriever.retrieve(extra, k=1)] == ["w0", "w1", "w2"]
    index.compact()
    (segment,) = _manifest(tmp_path)["segments"]
    folder = tmp_path / "colbert" / segment["name"]
    record = json.loads((folder / "graph.json").read_text())
    assert record["version"] == 3 and record["graph_storage"] == "float8"
    assert np.load(folder / "tokens.npy", mmap_mode="r").dtype == np.float16
    reopened = _voyager(tmp_path, dim=16)
    results = retrieve.ColBERT(index=reopened).retrieve(own + extra, k=1)
    assert [r[0]["id"] for r in results] == live + ["w0", "w1", "w2"]


def _segment_ids(folder: Path) -> list[list]:
    return [
        json.loads((folder / "colbert" / s["name"] / "ids.json").read_text())["ids"]
        for s in _manifest(folder)["segments"]
    ]


def test_compact_and_merge_grow_the_largest_graph(tmp_path, monkeypatch):
    docs, queries = topic_docs(300, seed=8)
    ids = list(range(len(docs)))
    index = _voyager(tmp_path)
    index.add_documents(ids[:40], docs[:40])
    index.add_documents(ids[40:], docs[40:])
    loads = []
    real = index._voyager

    class SpyIndex:  # voyager.Index, counting the graph files loaded
        def __new__(cls, *args, **kwargs):
            return real.Index(*args, **kwargs)

        @staticmethod
        def load(path):
            loads.append(path)
            return real.Index.load(path)

    class Spy:
        Index = SpyIndex
        Space = real.Space
        StorageDataType = real.StorageDataType

    larger = _manifest(tmp_path)["segments"][1]["name"]
    monkeypatch.setattr(index, "_voyager", Spy)
    index.compact()
    # The larger segment's graph was loaded and grown (the second load opens
    # the new segment); its documents come first.
    assert [Path(p).parent.name for p in loads][:1] == [larger]
    assert _segment_ids(tmp_path) == [ids[40:] + ids[:40]]
    graph = index._segments[0].extra["graph"]
    assert graph.num_elements == sum(-(-len(d) // 3) for d in docs)
    got = retrieve.ColBERT(index=index).retrieve(queries, k=10)
    assert recall_at_k(top_ids(got), top_ids(exact(ids, docs, queries)), 10) >= 0.95
    # A segment with deleted documents is not reused (its graph labels are
    # rows that dropping documents shifts): compact builds a new graph.
    index.remove_documents([5])
    loads.clear()
    index.compact()
    assert len(loads) == 1  # only the opening of the new segment
    assert _segment_ids(tmp_path) == [[i for i in ids[40:] + ids[:40] if i != 5]]
    assert len(index.documents_ids) == len(docs) - 1


def test_graph_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="graph_storage.*'int8'"):
        _voyager(tmp_path, graph_storage="int8")
    with pytest.raises(ValueError, match="graph_stride"):
        _voyager(tmp_path, graph_stride=0)
