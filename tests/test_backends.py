"""Optional index backends behind PyLate's extras: ScaNN and WARP run here,
TACHIOM and Stanford PLAID raise an ImportError naming the extra and the reason.

Vectors: the 12 SciFact abstracts encoded by a MiniLM-based ColBERT stored in
``tests/fixtures/xtr`` (see tests/test_xtr.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from pylate_clone import indexes, rank, retrieve

FIXTURE = Path(__file__).parent / "fixtures" / "xtr"


@pytest.fixture(scope="module")
def vectors() -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    import json

    arrays = np.load(FIXTURE / "xtr.npz", allow_pickle=False)
    ids = json.loads((FIXTURE / "xtr.json").read_text())["documents_ids"]
    docs = np.split(arrays["documents"], np.cumsum(arrays["document_lengths"])[:-1])
    queries = np.split(arrays["queries"], np.cumsum(arrays["query_lengths"])[:-1])
    return ids, docs, queries


def exact_top(ids, docs, query, k):
    ranked = rank.rerank([ids], [query], [docs])[0]
    return [r["id"] for r in ranked[:k]]


def no_pickles(folder: Path) -> None:
    found = [p for p in folder.rglob("*") if p.suffix in (".pkl", ".pickle")]
    assert not found, found


def test_scann_rerank_matches_exact_maxsim_and_reloads(tmp_path, vectors) -> None:
    ids, docs, queries = vectors
    index = indexes.ScaNN(
        index_folder=str(tmp_path), index_name="s", embedding_size=docs[0].shape[1]
    )
    index.add_documents(ids, docs)
    retriever = retrieve.ColBERT(index=index)
    got = retriever.retrieve(queries, k=3, k_token=200)
    for query, result in zip(queries, got):
        assert [r["id"] for r in result] == exact_top(ids, docs, query, 3)
    hits = index(queries[0], k=5)
    reopened = indexes.ScaNN(
        index_folder=str(tmp_path), index_name="s", embedding_size=docs[0].shape[1]
    )
    assert len(reopened) == len(ids)
    again = reopened(queries[0], k=5)
    assert [list(t) for t in again["documents_ids"][0]] == [
        list(t) for t in hits["documents_ids"][0]
    ]
    np.testing.assert_allclose(
        np.asarray(again["distances"][0]), np.asarray(hits["distances"][0]), atol=1e-6
    )
    stored = reopened.get_documents_embeddings([[ids[2], ids[0]]])
    np.testing.assert_array_equal(stored[0][0], docs[2])
    with pytest.raises(KeyError, match="nope.*not found"):
        reopened.get_documents_embeddings([["nope"]])
    no_pickles(tmp_path)


def test_scann_xtr_and_pylate_restrictions(vectors) -> None:
    ids, docs, queries = vectors
    index = indexes.ScaNN(embedding_size=docs[0].shape[1], store_embeddings=False)
    index.add_documents(ids, docs)
    results = retrieve.XTR(index=index).retrieve(queries[:2], k=4, k_token=50)
    assert [len(r) for r in results] == [4, 4]
    assert all(r["id"] in ids for q in results for r in q)
    with pytest.raises(ValueError, match="all documents at once"):
        index.add_documents(["x"], [docs[0]])
    with pytest.raises(NotImplementedError, match="removal"):
        index.remove_documents([ids[0]])
    with pytest.raises(NotImplementedError, match="store_embeddings"):
        index.get_documents_embeddings([[ids[0]]])
    with pytest.raises(ValueError, match="Invalid verbosity level"):
        indexes.ScaNN(verbose="loud")


def test_warp_end_to_end(tmp_path, vectors, caplog) -> None:
    ids, docs, queries = vectors
    index = indexes.WARP(
        index_folder=str(tmp_path), index_name="w", show_progress=False, device="cpu"
    )
    index.add_documents(ids[:8], docs[:8])
    index.add_documents(ids[8:], docs[8:])
    assert len(index) == 12
    # A document's own vectors as the query: it must come first.
    for position in (0, 9):
        top = retrieve.ColBERT(index=index).retrieve([docs[position]], k=3)[0]
        assert top[0]["id"] == ids[position]
    with caplog.at_level(logging.WARNING):
        index.remove_documents([ids[0], "missing-id"])
    assert "missing-id" in caplog.text
    reopened = indexes.WARP(
        index_folder=str(tmp_path), index_name="w", show_progress=False, device="cpu"
    )
    assert len(reopened) == 11 and ids[0] not in reopened
    assert ids[0] not in [r["id"] for r in reopened([docs[0]], k=11)[0]]
    limited = reopened([docs[3]], k=5, subset=[ids[4], ids[5]])[0]
    assert {r["id"] for r in limited} <= {ids[4], ids[5]}
    with pytest.raises(NotImplementedError):
        reopened.get_documents_embeddings([[ids[1]]])
    no_pickles(tmp_path)


@pytest.mark.parametrize(
    "factory,extra",
    [
        (lambda: indexes.TachiomIndex(), "tachiom"),
        (lambda: indexes.StanfordPLAID(), "colbert-ai"),
    ],
)
def test_unavailable_backends_name_extra_and_reason(factory, extra) -> None:
    with pytest.raises(ImportError, match=extra):
        factory()


def test_stanford_factory_routes_plaid_arguments() -> None:
    from pylate_clone.indexes.stanford_plaid import stanford_plaid_from_plaid_args

    with pytest.raises(ImportError, match="use_fast=True"):
        stanford_plaid_from_plaid_args("f", "n", True, ndocs=10, n_full_scores=3)
