"""The ragged (rerank) MaxSim kernels: the fused numba kernel equals the BLAS
block kernel and a naive PyLate-padded reference on every input kind."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from pylate_clone import rank
from pylate_clone.scores.kernels import ragged
from pylate_clone.scores.kernels.ragged import maxsim_ragged_batch

# Around the kernel's tile sizes: 8 token rows, 16 / 32 query columns.
LENGTHS = [0, 1, 2, 3, 7, 8, 9, 10, 15, 16, 17, 23, 40]


def padded_reference(query: np.ndarray, docs: list[np.ndarray]) -> np.ndarray:
    """PyLate's rerank: candidates zero-padded to the longest, no mask."""
    query = np.asarray(query, np.float64)
    longest = max(len(d) for d in docs)
    scores = []
    for doc in docs:
        padded = np.zeros((longest, query.shape[1]))
        padded[: len(doc)] = np.asarray(doc, np.float64)
        scores.append((query @ padded.T).max(axis=1).sum() if longest else 0.0)
    return np.asarray(scores)


def make(rng, query_length: int, dim: int, lengths=LENGTHS):
    query = rng.standard_normal((query_length, dim)).astype(np.float32)
    docs = [rng.standard_normal((n, dim)).astype(np.float32) for n in lengths]
    return query, docs


@pytest.mark.parametrize("query_length", [1, 5, 16, 17, 32, 33, 48, 64])
@pytest.mark.parametrize("dim", [3, 48, 128])
def test_jit_equals_reference_and_block_kernel(query_length, dim):
    rng = np.random.default_rng(query_length * 1000 + dim)
    query, docs = make(rng, query_length, dim)
    (jit,) = maxsim_ragged_batch([query], [docs], jit=True)
    (blas,) = maxsim_ragged_batch([query], [docs], jit=False)
    expected = padded_reference(query, docs)
    assert jit.dtype == np.float32 and jit.shape == (len(docs),)
    np.testing.assert_allclose(jit, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(jit, blas, rtol=1e-5, atol=1e-4)
    assert jit[LENGTHS.index(0)] == 0.0  # an empty candidate scores 0
    # Only the longest candidate keeps negative per-token maxima: shorter ones
    # are floored at 0, so their score is at least 0.
    assert np.all(jit[:-1] >= 0.0)


def test_jit_input_kinds_match_float32(tmp_path):
    rng = np.random.default_rng(7)
    query, docs = make(rng, 32, 24)
    (expected,) = maxsim_ragged_batch([query], [docs], jit=True)
    # float16 / float64 / int inputs are scored in float32 like the BLAS kernel.
    half = [d.astype(np.float16) for d in docs]
    (got_half,) = maxsim_ragged_batch([query], [half], jit=True)
    (blas_half,) = maxsim_ragged_batch([query], [half], jit=False)
    np.testing.assert_allclose(got_half, blas_half, rtol=1e-5, atol=1e-4)
    memmap = np.memmap(tmp_path / "d.f32", np.float32, "w+", shape=docs[-1].shape)
    memmap[:] = docs[-1]
    memmap.flush()
    read_only = np.memmap(tmp_path / "d.f32", np.float32, "r", shape=docs[-1].shape)
    fortran = [np.asfortranarray(d) for d in docs]
    strided = [np.repeat(d, 2, axis=0)[::2] for d in docs]  # non-contiguous rows
    kinds = {
        "float64": [d.astype(np.float64) for d in docs],
        "fortran": fortran,
        "strided": strided,
        "torch": [torch.from_numpy(d) for d in docs],
        "torch float64": [torch.from_numpy(d).double() for d in docs],
        "torch grad": [torch.from_numpy(d).requires_grad_() for d in docs],
        "memmap": docs[:-1] + [read_only],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's non-writable-array warning
        for name, candidates in kinds.items():
            (got,) = maxsim_ragged_batch([torch.from_numpy(query)], [candidates])
            np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=name)
    ints = [np.round(d * 4).astype(np.int32) for d in docs]
    (got_int,) = maxsim_ragged_batch([query], [ints], jit=True)
    np.testing.assert_allclose(
        got_int, padded_reference(query, ints), rtol=1e-5, atol=1e-3
    )


def test_jit_nan_reaches_only_its_score():
    rng = np.random.default_rng(1)
    query, docs = make(rng, 32, 16)
    docs[5] = docs[5].copy()
    docs[5][3, 2] = np.nan
    (got,) = maxsim_ragged_batch([query], [docs], jit=True)
    assert np.isnan(got[5])
    assert np.isfinite(np.delete(got, 5)).all()


def test_identical_candidates_tie_exactly():
    # A candidate's score depends on its own tokens only: the same matrix in
    # another position, chunk or neighbourhood scores bit for bit the same.
    rng = np.random.default_rng(2)
    query, docs = make(rng, 32, 128, lengths=[60] * 400)
    docs[0] = docs[399] = docs[123]
    (got,) = maxsim_ragged_batch([query], [docs], jit=True, num_threads=2)
    assert got[0] == got[123] == got[399]
    ranked = rank.rerank([list(range(400))], [query], [docs])[0]
    tied = [r["id"] for r in ranked if r["score"] == got[123]]
    assert tied == [0, 123, 399]  # ties keep the input order


def test_jit_threads_and_chunks_agree():
    # More tokens than one task holds: a query's candidates split over tasks.
    rng = np.random.default_rng(3)
    queries, per_query = [], []
    for n in (400, 3, 0, 150):
        query, docs = make(rng, 32, 64, lengths=rng.integers(0, 120, size=n))
        queries.append(query)
        per_query.append(docs)
    assert sum(len(d) for d in per_query[0]) > ragged._JIT_CHUNK_TOKENS
    one = maxsim_ragged_batch(queries, per_query, jit=True, num_threads=1)
    two = maxsim_ragged_batch(queries, per_query, jit=True, num_threads=2)
    blas = maxsim_ragged_batch(queries, per_query, jit=False)
    for a, b, c, q, docs in zip(one, two, blas, queries, per_query):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-4)
        if docs:
            np.testing.assert_allclose(
                a, padded_reference(q, docs), rtol=1e-5, atol=1e-4
            )
    assert one[2].shape == (0,)


def test_jit_bad_input():
    rng = np.random.default_rng(4)
    query, docs = make(rng, 4, 8, lengths=[3, 2])
    with pytest.raises(ValueError, match=r"documents\[0\]\[1\] must be a \(Ld, 8\)"):
        maxsim_ragged_batch([query], [[docs[0], docs[1][:, :5]]], jit=True)
    with pytest.raises(ValueError, match=r"documents\[1\]\[0\]"):
        maxsim_ragged_batch([query, query], [docs, [docs[0][None]]], jit=True)
    with pytest.raises(ValueError, match=r"queries\[0\] must be a non-empty"):
        maxsim_ragged_batch([query[:0]], [docs], jit=True)


def test_without_numba_kernel_falls_back(monkeypatch):
    rng = np.random.default_rng(5)
    query, docs = make(rng, 32, 16)
    (expected,) = maxsim_ragged_batch([query], [docs], jit=True)
    monkeypatch.setattr(ragged, "_jit_loaded", False)
    monkeypatch.setattr(ragged, "_jit_error", "numba is not installed (test).")
    with pytest.raises(ImportError, match="numba is not installed"):
        maxsim_ragged_batch([query], [docs], jit=True)
    (fallback,) = maxsim_ragged_batch([query], [docs])
    np.testing.assert_allclose(fallback, expected, rtol=1e-5, atol=1e-4)
    ranked = rank.rerank([list(range(len(docs)))], [query], [docs])[0]
    assert [r["id"] for r in ranked] == list(np.argsort(-expected, kind="stable"))
