"""Voyager's default candidate depth: k_token grows with the live tokens."""

from __future__ import annotations

import numpy as np
import pytest

from pylate_clone import indexes, retrieve
from pylate_clone.indexes.engine import hnsw
from pylate_clone.indexes.engine.hnsw import k_token_for
from tests.test_indexes import unit_docs

DIM = 16


class _Recording(indexes.Voyager):
    """A real Voyager that remembers the ``k`` each search asked for."""

    asked: list[int]

    def __call__(self, queries_embeddings, k=10, filter=None):
        self.asked.append(k)
        return super().__call__(queries_embeddings, k=k, filter=filter)


@pytest.fixture
def index(tmp_path) -> _Recording:
    built = _Recording(index_folder=tmp_path, embedding_size=DIM, show_progress=False)
    built.asked = []
    docs = unit_docs(60, seed=3, dim=DIM, lo=5, hi=15)
    return built.add_documents([f"d{i}" for i in range(60)], docs)


def test_k_token_for_is_100_up_to_a_million_tokens_then_grows():
    assert k_token_for(0) == 100
    assert k_token_for(815_632) == 100  # SciFact 1x
    assert k_token_for(1_000_000) == 100
    assert k_token_for(8_000_000) == 200
    assert k_token_for(8_154_698) == 202  # SciFact 10x
    assert k_token_for(27_000_000) == 300
    assert k_token_for(100_000_000) == 465
    assert k_token_for(8_000_000, base=10) == 20


def test_default_depth_follows_live_tokens(index, monkeypatch):
    docs_tokens = index.live_tokens()
    queries = unit_docs(2, seed=9, dim=DIM, lo=4, hi=5)
    retriever = retrieve.ColBERT(index=index)
    # A small collection: the retriever's 100.
    assert index.scaled_k_token() == 100
    retriever.retrieve(queries, k=5)
    assert index.asked == [100]
    # The same rule with a tiny threshold: the depth follows the live tokens,
    # and shrinks when documents are removed.
    monkeypatch.setattr(hnsw, "K_TOKEN_TOKENS", 100)
    expected = int(np.ceil(100 * np.cbrt(docs_tokens / 100)))
    assert index.scaled_k_token() == expected
    retriever.retrieve(queries, k=5)
    assert index.asked[-1] == expected
    removed = index.get_documents_embeddings([["d0", "d1", "d2"]])[0]
    index.remove_documents(["d0", "d1", "d2"])
    live = docs_tokens - sum(len(m) for m in removed)
    assert index.live_tokens() == live
    retriever.retrieve(queries, k=5)
    assert index.asked[-1] == int(np.ceil(100 * np.cbrt(live / 100)))
    # XTR's deep default is not grown.
    retrieve.XTR(index=index).retrieve(queries[0], k=5)
    assert index.asked[-1] == 10_000


def test_explicit_and_tuned_k_token_win(index, tmp_path, monkeypatch):
    monkeypatch.setattr(hnsw, "K_TOKEN_TOKENS", 100)
    queries = unit_docs(3, seed=5, dim=DIM, lo=4, hi=6)
    retriever = retrieve.ColBERT(index=index)
    retriever.retrieve(queries, k=5, k_token=37)
    assert index.asked[-1] == 37
    table = index.tune(queries, settings=[{"ef_search": 64, "k_token": 41}])
    assert index.k_token == 41 and [r.get("k_token") for r in table].count(41) == 1
    retriever.retrieve(queries, k=5)
    assert index.asked[-1] == 41
    fixed = _Recording(
        index_folder=tmp_path / "fixed", embedding_size=DIM, show_progress=False,
        k_token=50,
    )  # fmt: skip
    fixed.asked = []
    fixed.add_documents(["a", "b"], unit_docs(2, seed=1, dim=DIM))
    retrieve.ColBERT(index=fixed).retrieve(queries, k=1)
    assert fixed.asked == [50]
