"""scores and rank.rerank equal PyLate 1.6.0's outputs (fixtures scores.npz, rerank.*)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from parity import load_npz

from pylate_clone import rank, scores

S = load_npz("outputs/scores.npz")


def close(got, reference):
    reference = np.asarray(reference)
    atol = 1e-4 + 1e-5 * float(np.abs(reference).max())
    np.testing.assert_allclose(np.asarray(got), reference, atol=atol, rtol=0)


def t(key):
    return torch.from_numpy(S[key])


def test_colbert_scores_cases():
    close(scores.colbert_scores(t("cs_queries"), t("cs_documents")), S["cs_out_nomask"])
    close(
        scores.colbert_scores(
            t("cs_queries"), t("cs_documents"), documents_mask=t("cs_documents_mask")
        ),
        S["cs_out_docmask"],
    )
    close(
        scores.colbert_scores(
            t("cs_queries"),
            t("cs_documents"),
            queries_mask=t("cs_queries_mask"),
            documents_mask=t("cs_documents_mask"),
        ),
        S["cs_out_bothmasks"],
    )
    close(
        scores.colbert_scores(S["cs_queries"], S["cs_documents"]),
        S["cs_out_numpy_inputs"],
    )


def test_masking_is_multiplicative():
    # Every real similarity is <= 0, so masked tokens (scoring 0) win the max.
    got = scores.colbert_scores(
        t("cs_queries").abs(),
        t("cs_documents_negative"),
        documents_mask=t("cs_documents_mask"),
    )
    close(got, S["cs_out_negative_docmask"])
    assert (got <= 0).all()


def test_pairwise_and_kd_scores():
    queries = [t(f"pw_query_{i}") for i in range(3)]
    documents = [t(f"pw_document_{i}") for i in range(3)]
    close(scores.colbert_scores_pairwise(queries, documents), S["pw_out"])
    close(
        scores.colbert_kd_scores(t("kd_queries"), t("kd_documents")), S["kd_out_nomask"]
    )
    close(
        scores.colbert_kd_scores(
            t("kd_queries"), t("kd_documents"), documents_mask=t("kd_documents_mask")
        ),
        S["kd_out_docmask"],
    )
    close(
        scores.colbert_kd_scores(
            t("kd_queries"),
            t("kd_documents"),
            queries_mask=t("kd_queries_mask"),
            documents_mask=t("kd_documents_mask"),
        ),
        S["kd_out_bothmasks"],
    )


def test_contrastive_scorers_are_query_major():
    got = scores.ColBERTScores()(
        t("cb_queries"), t("cb_documents"), documents_mask=t("cb_documents_mask")
    )
    assert got.shape == (3, 6)
    close(got, S["cb_out_ColBERTScores"])
    xtr = scores.XTRScores(k=8)(
        t("cb_queries"), t("cb_documents"), documents_mask=t("cb_documents_mask")
    )
    assert xtr.dtype == torch.float32
    close(xtr, S["cb_out_XTRScores_k8"])
    kd = scores.XTRKDScores(k=8)(
        t("cb_queries"), t("cb_documents"), documents_mask=t("cb_documents_mask")
    )
    full = S["cb_out_XTRScores_k8"]
    close(kd, np.stack([full[i, i * 2 : i * 2 + 2] for i in range(3)]))


def test_similarity_function_enum():
    assert scores.SimilarityFunction.possible_values() == ["MaxSim"]
    assert scores.SimilarityFunction.to_similarity_fn("MaxSim") is scores.colbert_scores
    with pytest.raises(ValueError):
        scores.SimilarityFunction("cosine")


def test_score_backend_validation(monkeypatch):
    q, d = t("cs_queries"), t("cs_documents")
    close(scores.colbert_scores(q, d, backend="torch"), S["cs_out_nomask"])
    with pytest.raises(ValueError, match="backend"):
        scores.colbert_scores(q, d, backend="nope")
    monkeypatch.setenv("PYLATE_SCORES_BACKEND", "bogus")
    with pytest.raises(ValueError, match="backend"):
        scores.colbert_scores(q, d)


def test_score_shape_errors():
    with pytest.raises(ValueError, match="queries_embeddings must have 3 dimensions"):
        scores.colbert_scores(torch.zeros(5, 8), torch.zeros(2, 3, 8))
    with pytest.raises(ValueError, match="embedding dimension"):
        scores.colbert_scores(torch.zeros(1, 5, 8), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="documents_mask must have shape"):
        scores.colbert_scores(
            torch.zeros(1, 5, 8), torch.zeros(2, 3, 8), documents_mask=torch.ones(2, 4)
        )


def _rerank_inputs():
    data = load_npz("outputs/rerank.npz")
    reference = json.loads(
        (__import__("parity").root() / "outputs/rerank.json").read_text()
    )
    queries = [data["query_0"], data["query_1"]]
    documents = [
        [data[f"documents_g0_{j}"] for j in range(3)],
        [data[f"documents_g1_{j}"] for j in range(5)],
    ]
    return reference, queries, documents


def _assert_rerank(got, expected):
    assert len(got) == len(expected)
    for row, ref in zip(got, expected):
        assert [r["id"] for r in row] == [r["id"] for r in ref]
        close([r["score"] for r in row], [r["score"] for r in ref])
        assert all(isinstance(r["score"], float) for r in row)


def test_rerank_matches_pylate_numpy_and_torch():
    reference, queries, documents = _rerank_inputs()
    _assert_rerank(
        rank.rerank(reference["documents_ids"], queries, documents), reference["result"]
    )
    got = rank.rerank(
        reference["documents_ids"],
        [torch.from_numpy(q) for q in queries],
        [[torch.from_numpy(d) for d in group] for group in documents],
        device="cpu",
    )
    _assert_rerank(got, reference["result"])


def test_rerank_zero_padding_semantics():
    # A shorter candidate is zero-padded (unmasked) in PyLate, so a negative
    # per-token maximum becomes 0; an empty document scores exactly 0.
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    long_doc = torch.tensor([[-1.0, -0.2], [-0.3, -1.0], [-0.5, -0.5]])
    short_doc = torch.tensor([[-1.0, -1.0]])
    empty = torch.zeros(0, 2)
    got = rank.rerank(
        [["long", "short", "empty"]], [query], [[long_doc, short_doc, empty]]
    )
    by_id = {r["id"]: r["score"] for r in got[0]}
    assert by_id == {"long": pytest.approx(-0.5), "short": 0.0, "empty": 0.0}
    padded = scores.colbert_scores(
        query[None],
        torch.nn.utils.rnn.pad_sequence([long_doc, short_doc, empty], batch_first=True),
    )[0]
    assert [by_id[k] for k in ("long", "short", "empty")] == pytest.approx(
        padded.tolist()
    )


def test_rerank_bad_input():
    q = np.zeros((4, 8), dtype=np.float32)
    d = np.zeros((3, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="one entry per query"):
        rank.rerank([[1], [2]], [q], [[d], [d]])
    with pytest.raises(ValueError, match="has 2 ids but documents_embeddings has 1"):
        rank.rerank([[1, 2]], [q], [[d]])
    with pytest.raises(
        ValueError, match=r"documents_embeddings\[0\]\[0\] has dimension 4"
    ):
        rank.rerank([[1]], [q], [[np.zeros((3, 4), dtype=np.float32)]])
    with pytest.raises(ValueError, match="2-D"):
        rank.rerank([[1]], [q], [[np.zeros((2, 3, 8), dtype=np.float32)]])
    assert rank.rerank([], [], []) == []
    assert rank.rerank([[]], [q], [[]]) == [[]]
