"""Centroid inverted file (IVF): the candidate generator of the PLAID index.

Pure array functions, no I/O. Every token vector gets the code of its nearest
centroid; each centroid lists the documents owning at least one token with its
code (CSR: ``indptr (K + 1,)``, ``docs (nnz,)``). A query token probes its
``n_ivf_probe`` best centroids; a document's approximate score is the sum over
query tokens of the best centroid score it was reached through, with a
per-token imputation for tokens that did not reach it.

Interface contract (used by ``indexes.plaid``; keep it stable):

``default_num_centroids(num_tokens) -> int``
``train_centroids(sample (S, D), num_centroids, niters, seed) -> (K, D) float32``
``assign(tokens (T, D), centroids (K, D)) -> (T,) int32``
``build_lists(codes (T,), offsets (N + 1,), num_centroids) -> (indptr, docs)``
``probe(query_centroid_scores (Lq, K), indptr, docs, num_docs, n_ivf_probe)
    -> (candidates (c,) int64, approximate_scores (c,) float32)``
"""

from __future__ import annotations

import math

import numpy as np


def default_num_centroids(num_tokens: int) -> int:
    """Codebook size for a collection of ``num_tokens`` token vectors."""
    if num_tokens <= 0:
        return 1
    return int(
        max(1, min(num_tokens, 2 ** math.floor(math.log2(4 * math.sqrt(num_tokens)))))
    )


def train_centroids(
    sample: np.ndarray, num_centroids: int, niters: int = 4, seed: int = 42
) -> np.ndarray:
    """Spherical k-means on ``sample`` ``(S, D)``; returns unit-norm ``(K, D)``."""
    sample = np.asarray(sample, dtype=np.float32)
    rng = np.random.default_rng(seed)
    k = min(num_centroids, len(sample))
    centroids = sample[rng.choice(len(sample), size=k, replace=False)].copy()
    for _ in range(niters):
        codes = assign(sample, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, codes, sample)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        filled = norms[:, 0] > 0
        centroids[filled] = sums[filled] / norms[filled]
    return centroids


def assign(
    tokens: np.ndarray, centroids: np.ndarray, batch_size: int = 1 << 15
) -> np.ndarray:
    """Nearest centroid (largest dot product) of each token, ``(T,)`` int32."""
    centroids = np.asarray(centroids, dtype=np.float32)
    codes = np.empty(len(tokens), dtype=np.int32)
    for start in range(0, len(tokens), batch_size):
        block = np.asarray(tokens[start : start + batch_size], dtype=np.float32)
        codes[start : start + len(block)] = np.argmax(block @ centroids.T, axis=1)
    return codes


def build_lists(
    codes: np.ndarray, offsets: np.ndarray, num_centroids: int
) -> tuple[np.ndarray, np.ndarray]:
    """CSR of the documents reached through each centroid (unique, sorted)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    doc_of_token = np.repeat(
        np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets)
    )
    pairs = np.unique(codes.astype(np.int64) * (len(offsets) + 1) + doc_of_token)
    centroid = pairs // (len(offsets) + 1)
    docs = (pairs % (len(offsets) + 1)).astype(np.int32)
    indptr = np.zeros(num_centroids + 1, dtype=np.int64)
    np.cumsum(np.bincount(centroid, minlength=num_centroids), out=indptr[1:])
    return indptr, docs


def probe(
    query_centroid_scores: np.ndarray,
    indptr: np.ndarray,
    docs: np.ndarray,
    num_docs: int,
    n_ivf_probe: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate documents of one query and their approximate MaxSim."""
    scores = np.asarray(query_centroid_scores, dtype=np.float32)
    n_probe = min(n_ivf_probe, scores.shape[1])
    best = np.full((len(scores), num_docs), -np.inf, dtype=np.float32)
    reached = np.zeros(num_docs, dtype=bool)
    floor = np.empty(len(scores), dtype=np.float32)
    for i, row in enumerate(scores):
        top = np.argpartition(-row, n_probe - 1)[:n_probe]
        top = top[np.argsort(row[top])]  # ascending: the last write wins
        floor[i] = row[top[0]]
        for c in top:
            members = docs[indptr[c] : indptr[c + 1]]
            best[i, members] = row[c]
            reached[members] = True
    candidates = np.flatnonzero(reached)
    approx = best[:, candidates]
    approx = np.where(np.isfinite(approx), approx, floor[:, None]).sum(axis=0)
    return candidates.astype(np.int64), approx.astype(np.float32)
