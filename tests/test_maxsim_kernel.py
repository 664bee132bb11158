"""The MaxSim block kernel equals a naive per-document reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pylate_clone.scores.kernels.maxsim import maxsim_flat
from pylate_clone.scores.kernels.ragged import maxsim_ragged_batch

DIM = 48


def naive_flat(queries, tokens, offsets, rows):
    out = np.zeros((len(queries), len(rows)), dtype=np.float32)
    for i, q in enumerate(queries):
        for c, j in enumerate(rows):
            doc = np.asarray(tokens[offsets[j] : offsets[j + 1]], dtype=np.float32)
            if len(doc):
                out[i, c] = (np.asarray(q, np.float32) @ doc.T).max(axis=1).sum()
    return out


@pytest.fixture(scope="module")
def store():
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 120, size=400)
    lengths[[0, 17, 399]] = 0  # empty documents, first and last included
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = rng.standard_normal((offsets[-1], DIM)).astype(np.float32)
    queries = [
        rng.standard_normal((int(rng.integers(1, 33)), DIM)).astype(np.float32)
        for _ in range(24)  # > 512 query columns: several column groups
    ]
    return tokens, offsets, queries


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("rows", ["all", "permuted", "repeats"])
def test_flat_equals_naive(store, dtype, rows):
    tokens, offsets, queries = store
    tokens = tokens.astype(dtype)
    n = len(offsets) - 1
    chosen = {
        "all": None,
        "permuted": np.random.default_rng(0).permutation(n)[:150],
        "repeats": np.array([5, 5, 17, 399, 0, 3, 2]),
    }[rows]
    expected = naive_flat(
        queries, tokens, offsets, np.arange(n) if chosen is None else chosen
    )
    got = maxsim_flat(queries, tokens, offsets, chosen)
    assert got.dtype == np.float32
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-4)
    if chosen is not None and 17 in chosen:
        assert np.all(got[:, list(chosen).index(17)] == 0.0)  # empty doc scores 0


def test_flat_one_query_threads_and_3d_array(store):
    tokens, offsets, queries = store
    one = maxsim_flat(queries[:1], tokens, offsets)
    many = maxsim_flat(queries, tokens, offsets, num_threads=1)
    threaded = maxsim_flat(queries, tokens, offsets, num_threads=2)
    np.testing.assert_array_equal(many, threaded)
    np.testing.assert_allclose(one[0], many[0], rtol=1e-6, atol=1e-5)
    padded = np.stack([q[:1].repeat(5, axis=0) for q in queries[:3]])  # (3, 5, D)
    np.testing.assert_allclose(
        maxsim_flat(padded, tokens, offsets),
        naive_flat(list(padded), tokens, offsets, np.arange(len(offsets) - 1)),
        rtol=1e-5,
        atol=2e-4,
    )


def test_flat_keeps_torch_threads(store):
    tokens, offsets, queries = store
    before = torch.get_num_threads()
    maxsim_flat(queries, tokens, offsets, num_threads=2)
    assert torch.get_num_threads() == before


def test_flat_bad_input(store):
    tokens, offsets, queries = store
    with pytest.raises(ValueError, match=r"rows\[1\]"):
        maxsim_flat(queries, tokens, offsets, np.array([0, 400]))
    with pytest.raises(ValueError, match=r"queries\[0\]"):
        maxsim_flat([np.zeros((3, DIM + 1), np.float32)], tokens, offsets)
    with pytest.raises(ValueError, match="wrap a single query"):
        maxsim_flat(queries[0], tokens, offsets)
    assert maxsim_flat([], tokens, offsets).shape == (0, 400)
    assert maxsim_flat(queries, tokens, offsets, np.zeros(0, np.int64)).shape == (24, 0)


def test_ragged_batch_pylate_padding(store):
    tokens, offsets, queries = store
    docs = [tokens[offsets[j] : offsets[j + 1]] for j in range(30)]
    per_query = [docs[:10], docs[10:30], [], docs[5:6]]
    got = maxsim_ragged_batch(queries[:4], per_query)
    for q, cands, scores in zip(queries[:4], per_query, got):
        assert scores.shape == (len(cands),)
        if not cands:
            continue
        longest = max(len(d) for d in cands)
        padded = np.zeros((len(cands), longest, DIM), np.float32)
        for j, d in enumerate(cands):
            padded[j, : len(d)] = d
        expected = (np.einsum("qd,ntd->nqt", q, padded)).max(axis=2).sum(axis=1)
        np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=2e-4)
