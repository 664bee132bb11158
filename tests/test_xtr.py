"""XTR scoring and retrieval against PyLate 1.6.0 on real MiniLM-ColBERT vectors.

``tests/fixtures/xtr`` holds 12 SciFact abstracts and 4 claims encoded by a
MiniLM-based ColBERT under PyLate 1.6.0, and what ``pylate.rank.score_xtr``
returned for each claim's exact top-40 token hits
(``scripts/make_api_fixtures.py`` regenerates them).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pylate_clone import indexes, rank, retrieve

FIXTURE = Path(__file__).parent / "fixtures" / "xtr"


@pytest.fixture(scope="module")
def xtr_case() -> dict:
    arrays = np.load(FIXTURE / "xtr.npz", allow_pickle=False)
    meta = json.loads((FIXTURE / "xtr.json").read_text())
    split = np.cumsum(arrays["document_lengths"])[:-1]
    meta["documents"] = np.split(arrays["documents"], split)
    meta["queries"] = np.split(
        arrays["queries"], np.cumsum(arrays["query_lengths"])[:-1]
    )
    return meta


def exact_hits(case: dict, query: np.ndarray, k_token: int):
    flat = np.concatenate(case["documents"])
    owner = np.repeat(
        np.arange(len(case["documents"])), [len(d) for d in case["documents"]]
    )
    sims = query @ flat.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k_token]
    ids = [[case["documents_ids"][owner[j]] for j in row] for row in top]
    return ids, [sims[i, row].tolist() for i, row in enumerate(top)]


def test_score_xtr_matches_pylate_on_minilm_vectors(xtr_case: dict) -> None:
    for query, expected in zip(xtr_case["queries"], xtr_case["results"]):
        ids, scores = exact_hits(xtr_case, query, xtr_case["k_token"])
        got = rank.score_xtr(ids, scores, k=xtr_case["k"])
        assert [r["id"] for r in got] == expected["ids"]
        np.testing.assert_allclose(
            [r["score"] for r in got], expected["scores"], rtol=0, atol=1e-5
        )


def test_score_xtr_imputes_each_tokens_minimum_and_keeps_best_hit() -> None:
    # Token 0 hits a twice (0.9, 0.4) and b once; token 1 hits b and c.
    ids = [["a", "b", "a"], ["b", "c"]]
    scores = [[0.9, 0.5, 0.4], [0.8, 0.2]]
    got = rank.score_xtr(ids, scores, k=10)
    # a: 0.9 + min(token 1)=0.2; b: 0.5 + 0.8; c: min(token 0)=0.4 + 0.2.
    assert [r["id"] for r in got] == ["b", "a", "c"]
    np.testing.assert_allclose([r["score"] for r in got], [1.3, 1.1, 0.6], atol=1e-6)
    assert [r["id"] for r in rank.score_xtr(ids, scores, k=1)] == ["b"]


def test_score_xtr_empty_and_bad_input() -> None:
    assert rank.score_xtr([], [], k=3) == []
    assert rank.score_xtr([[], []], [[], []], k=3) == []
    with pytest.raises(ValueError, match="same number of query tokens"):
        rank.score_xtr([["a"]], [], k=1)
    with pytest.raises(ValueError, match="query token 1"):
        rank.score_xtr([["a"], ["b", "c"]], [[0.1], [0.2]], k=1)
    with pytest.raises(ValueError, match="k must be"):
        rank.score_xtr([["a"]], [[0.1]], k=0)


def _voyager(tmp_path: Path, case: dict) -> indexes.Voyager:
    index = indexes.Voyager(
        index_folder=str(tmp_path),
        index_name="xtr",
        embedding_size=case["documents"][0].shape[1],
        show_progress=False,
        # XTR scores from the retrieved token similarities themselves: it
        # needs every token in the graph, in full precision.
        graph_stride=1,
        graph_storage="float32",
    )
    return index.add_documents(case["documents_ids"], case["documents"])


def test_xtr_retriever_on_voyager_matches_exact_xtr(tmp_path: Path, xtr_case) -> None:
    retriever = retrieve.XTR(index=_voyager(tmp_path, xtr_case))
    k, k_token = xtr_case["k"], xtr_case["k_token"]
    results = retriever.retrieve(
        [torch.from_numpy(q) for q in xtr_case["queries"]], k=k, k_token=k_token
    )
    assert len(results) == len(xtr_case["queries"])
    for got, expected in zip(results, xtr_case["results"]):
        # Voyager is approximate (HNSW) and stores vectors in its own
        # precision: same documents, scores within 1e-3 of the exact hits'.
        assert [r["id"] for r in got] == expected["ids"]
        np.testing.assert_allclose(
            [r["score"] for r in got], expected["scores"], atol=1e-3
        )
    single = retriever.retrieve(xtr_case["queries"][0], k=2, k_token=k_token)
    assert len(single) == 1 and [r["id"] for r in single[0]] == expected_ids(
        xtr_case, 0, 2
    )


def expected_ids(case: dict, query: int, k: int) -> list[str]:
    return case["results"][query]["ids"][:k]


def test_xtr_retriever_refuses_subset(tmp_path: Path, xtr_case: dict) -> None:
    retriever = retrieve.XTR(index=_voyager(tmp_path, xtr_case))
    with pytest.raises(NotImplementedError, match="Subset filtering"):
        retriever.retrieve(xtr_case["queries"][:1], k=2, subset=["4983"])
