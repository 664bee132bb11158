"""Centroid IVF: k-means, assignment, CSR lists and the vectorised probe."""

from __future__ import annotations

import numpy as np
import pytest

from pylate_clone.indexes.engine import ivf

DIM = 32


def unit(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def collection():
    rng = np.random.default_rng(5)
    lengths = rng.integers(1, 60, size=800)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = unit(rng, (offsets[-1], DIM))
    centroids = ivf.train_centroids(tokens[:5000], 128, seed=1)
    codes = ivf.assign(tokens, centroids)
    indptr, docs = ivf.build_lists(codes, offsets, 128)
    return tokens, offsets, centroids, codes, indptr, docs


def reference_probe(scores, indptr, docs, num_docs, n_probe):
    """Per-centroid loop: best probed centroid per (token, doc), else the best unprobed."""
    best = np.full((len(scores), num_docs), -np.inf, dtype=np.float32)
    floor = np.empty(len(scores), dtype=np.float32)
    for i, row in enumerate(scores):
        ranked = np.argsort(-row)
        top = ranked[:n_probe]
        floor[i] = row[ranked[n_probe]] if n_probe < len(row) else row.min()
        for c in top:
            members = docs[indptr[c] : indptr[c + 1]]
            best[i, members] = np.maximum(best[i, members], row[c])
    reached = np.flatnonzero(np.isfinite(best).any(axis=0))
    approx = np.where(np.isfinite(best[:, reached]), best[:, reached], floor[:, None])
    return reached, approx.sum(axis=0)


def test_codebook(collection):
    tokens, offsets, centroids, codes, indptr, docs = collection
    assert centroids.shape == (128, DIM) and centroids.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    again = ivf.train_centroids(tokens[:5000], 128, seed=1)
    np.testing.assert_array_equal(centroids, again)  # seeded: deterministic
    np.testing.assert_array_equal(codes, np.argmax(tokens @ centroids.T, axis=1))
    half = ivf.assign(tokens.astype(np.float16), centroids, batch_size=300)
    assert (half == codes).mean() > 0.99  # float16 storage barely moves codes
    # k-means improves on its random initialisation
    init = tokens[np.random.default_rng(1).choice(5000, 128, replace=False)]
    assert (tokens @ centroids.T).max(1).mean() > (tokens @ init.T).max(1).mean()


def test_lists_are_the_codes_of_each_document(collection):
    tokens, offsets, centroids, codes, indptr, docs = collection
    assert indptr.shape == (129,) and indptr[-1] == len(docs)
    for c in (0, 17, 127):
        members = docs[indptr[c] : indptr[c + 1]]
        assert np.all(np.diff(members) > 0)  # unique, sorted
        expected = [j for j in range(800) if c in codes[offsets[j] : offsets[j + 1]]]
        assert members.tolist() == expected


@pytest.mark.parametrize("n_probe", [1, 3, 16, 500])
def test_probe_equals_reference(collection, n_probe):
    tokens, offsets, centroids, codes, indptr, docs = collection
    rng = np.random.default_rng(n_probe)
    scores = unit(rng, (20, DIM)) @ centroids.T
    got_rows, got = ivf.probe(scores, indptr, docs, 800, n_probe)
    want_rows, want = reference_probe(scores, indptr, docs, 800, n_probe)
    np.testing.assert_array_equal(got_rows, want_rows)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert got_rows.dtype == np.int64 and got.dtype == np.float32


def test_probe_finds_planted_document(collection):
    tokens, offsets, centroids, codes, indptr, docs = collection
    planted = 421
    doc = tokens[offsets[planted] : offsets[planted + 1]]
    rng = np.random.default_rng(9)
    query = doc[:8] + 0.05 * rng.standard_normal(doc[:8].shape).astype(np.float32)
    rows, approx = ivf.probe(query @ centroids.T, indptr, docs, 800, 2)
    assert planted in rows
    assert rows[np.argmax(approx)] == planted


def test_default_num_centroids():
    assert ivf.default_num_centroids(0) == 1
    assert ivf.default_num_centroids(10) == 8
    for t in (1_000, 815_632, 8_154_698):
        k = ivf.default_num_centroids(t)
        assert k & (k - 1) == 0 and k <= 4 * t**0.5 < 2 * k
