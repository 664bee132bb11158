"""Retrieval on the PyLate 1.6.0 reference collection (300 docs, 10 queries, tiny-colbert).

The exhaustive top-10 must match exactly (rank.rerank); Voyager and PLAID must
overlap PyLate's exhaustive top-10 by at least 8/10 on every query, the bar the
fixtures README sets for approximate indexes.
"""

from __future__ import annotations

import json

import pytest

from pylate_clone import indexes, rank, retrieve


@pytest.fixture(scope="module")
def encoded(fixtures_dir):
    models = pytest.importorskip("pylate_clone.models")
    data = json.loads((fixtures_dir / "outputs" / "retrieval.json").read_text())
    model = models.ColBERT(
        model_name_or_path=str(fixtures_dir / "models" / "tiny-colbert"), device="cpu"
    )
    corpus = data["corpus"]
    docs = model.encode(corpus["documents"], is_query=False, show_progress_bar=False)
    queries = model.encode(corpus["queries"], is_query=True, show_progress_bar=False)
    return data, corpus["documents_ids"], docs, queries


def _ids(results):
    return [[r["id"] for r in rs] for rs in results]


def test_exhaustive_matches_reference(encoded):
    data, ids, docs, queries = encoded
    ranked = rank.rerank([ids] * len(queries), queries, [docs] * len(queries))
    assert _ids([r[:10] for r in ranked]) == _ids(data["exhaustive"]["top10"])


@pytest.mark.parametrize("kind", ["voyager", "plaid"])
def test_index_overlaps_reference(kind, encoded, tmp_path):
    data, ids, docs, queries = encoded
    if kind == "voyager":
        index = indexes.Voyager(
            index_folder=tmp_path,
            index_name="voyager",
            override=True,
            embedding_size=128,
        )
    else:
        index = indexes.PLAID(
            index_folder=tmp_path,
            index_name="plaid",
            override=True,
            device="cpu",
            show_progress=False,
        )
    index.add_documents(ids, docs)
    got = _ids(retrieve.ColBERT(index=index).retrieve(queries, k=10))
    reference = _ids(data["exhaustive"]["top10"])
    overlaps = [len(set(g) & set(r)) for g, r in zip(got, reference)]
    assert min(overlaps) >= 8, overlaps
    # Same bar against PyLate's own approximate results.
    pylate = _ids(data[kind]["top10"])
    assert min(len(set(g) & set(p)) for g, p in zip(got, pylate)) >= 8
