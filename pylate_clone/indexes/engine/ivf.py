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
import torch

try:  # numba is a core dependency; the numpy expansion stays as the fallback
    from ._probe_jit import expand as _jit_expand
except ImportError:  # pragma: no cover - numba missing
    _jit_expand = None

_SCRATCH_FLOATS = 1 << 24  # bound of one (block, K) similarity matrix (64 MB)


def default_num_centroids(num_tokens: int) -> int:
    """Codebook size for a collection of ``num_tokens`` token vectors.

    The power of two at or below ``4 * sqrt(num_tokens)``: a quarter of
    fast-plaid's ``16 * sqrt``, because assigning every token costs
    ``T * K * D`` and probing a coarser codebook is cheap when each list is
    scored in one vectorised pass (see docs/index_engine.md).
    """
    if num_tokens <= 0:
        return 1
    return int(
        max(1, min(num_tokens, 2 ** math.floor(math.log2(4 * math.sqrt(num_tokens)))))
    )


def default_sample_size(num_centroids: int) -> int:
    """Token vectors k-means trains on: a bounded sample (``64 * K``, >= 16k)."""
    return int(max(1 << 14, 64 * num_centroids))


def train_centroids(
    sample: np.ndarray,
    num_centroids: int,
    niters: int = 4,
    seed: int = 42,
    device: torch.device | None = None,
) -> np.ndarray:
    """Spherical k-means on ``sample`` ``(S, D)``; returns unit-norm ``(K, D)``.

    Initialised on ``K`` distinct sample vectors drawn with ``seed``; each
    iteration assigns every sample vector (:func:`assign`) and moves each
    centroid to the normalised sum of its members (an empty cluster keeps its
    centroid). ``device``: run through torch there (None: the CPU).
    """
    sample_t = torch.from_numpy(np.ascontiguousarray(sample)).float()
    if device is not None:
        sample_t = sample_t.to(device)
    if sample_t.ndim != 2 or len(sample_t) == 0:
        raise ValueError(
            f"sample must be a non-empty (S, D) matrix, got shape {tuple(sample_t.shape)}."
        )
    rng = np.random.default_rng(seed)
    k = min(num_centroids, len(sample_t))
    pick = torch.from_numpy(rng.choice(len(sample_t), size=k, replace=False))
    centroids = sample_t[pick.to(sample_t.device)].clone()
    for _ in range(niters):
        codes = _assign_t(sample_t, centroids, max(256, _SCRATCH_FLOATS // k)).long()
        sums = torch.zeros_like(centroids).index_add_(0, codes, sample_t)
        norms = sums.norm(dim=1, keepdim=True)
        filled = norms[:, 0] > 0
        centroids[filled] = sums[filled] / norms[filled]
    return centroids.cpu().numpy()


def _assign_t(
    tokens: torch.Tensor, centroids: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """:func:`assign` on tensors of one device: ``(T,)`` int32 on that device."""
    codes = torch.empty(len(tokens), dtype=torch.int32, device=centroids.device)
    for start in range(0, len(tokens), batch_size):
        block = tokens[start : start + batch_size].to(centroids.device).float()
        codes[start : start + len(block)] = torch.mm(block, centroids.T).argmax(dim=1)
    return codes


def assign(
    tokens: np.ndarray,
    centroids: np.ndarray,
    batch_size: int | None = None,
    device: torch.device | None = None,
) -> np.ndarray:
    """Nearest centroid (largest dot product) of each token, ``(T,)`` int32.

    ``tokens`` may be float16 or float32 (or a memory map); it is converted
    block by block so memory stays bounded. ``device``: the matmuls run there.
    """
    centroids_t = torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32))
    if device is not None:
        centroids_t = centroids_t.to(device)
    if batch_size is None:
        batch_size = max(256, _SCRATCH_FLOATS // max(1, len(centroids_t)))
    source = torch.from_numpy(np.asarray(tokens))
    return _assign_t(source, centroids_t, batch_size).cpu().numpy()


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
    """Candidate documents of one query and their approximate MaxSim.

    Each query token probes its ``n_ivf_probe`` best centroids; a document
    reached by token ``i`` through several centroids keeps the best score,
    and a token that did not reach it contributes the score of its best
    unprobed centroid (the ``n_ivf_probe + 1``-th: an upper bound of what it
    could have had, in the spirit of WARP's missing-similarity imputation;
    imputing the ``n_ivf_probe``-th score instead ties every candidate when
    one centroid is probed).

    Parameters
    ----------
    query_centroid_scores
        ``(Lq, K)`` dot products of the query tokens with the centroids.
    indptr, docs
        CSR lists of one segment (:func:`build_lists`).
    num_docs
        Documents in the segment.
    n_ivf_probe
        Centroids probed per query token.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        Candidate rows ``(c,)`` int64 (ascending) and their approximate
        scores ``(c,)`` float32.
    """
    scores = np.asarray(query_centroid_scores, dtype=np.float32)
    lq, k = scores.shape
    n_probe = max(1, min(n_ivf_probe, k))
    if n_probe < k:  # the (p+1)-th best score bounds what an unprobed centroid gives
        part = np.argpartition(-scores, n_probe, axis=1)
        top = part[:, :n_probe]  # (Lq, p)
        floor = np.take_along_axis(scores, part[:, n_probe : n_probe + 1], axis=1)[:, 0]
    else:
        top = np.broadcast_to(np.arange(k), (lq, k))
        floor = scores.min(axis=1)
    top_scores = np.take_along_axis(scores, top, axis=1)
    if _jit_expand is not None:
        # Lists walked best centroid first per token, so a token's first visit
        # of a document is its best score there: O(1) per list entry.
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.ascontiguousarray(np.take_along_axis(top, order, axis=1), np.int64)
        top_scores = np.ascontiguousarray(np.take_along_axis(top_scores, order, axis=1))
        found, approx = _jit_expand(
            top, top_scores, np.ascontiguousarray(floor, np.float32),
            np.asarray(indptr, np.int64), np.asarray(docs), int(num_docs),
        )  # fmt: skip
        order = np.argsort(found, kind="stable")
        return found[order], approx[order]
    # Expand every probed (token, centroid) pair to its documents, worst pair
    # first: a fancy assignment keeps the last write, so each (token, doc)
    # ends with its best centroid score.
    order = np.argsort(top_scores, axis=None, kind="stable")
    token = order // n_probe
    centroid = top.reshape(-1)[order]
    starts, ends = indptr[centroid], indptr[centroid + 1]
    sizes = ends - starts
    total = int(sizes.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    within = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    members = docs[np.repeat(starts, sizes) + within].astype(np.int64)
    reached = np.zeros(num_docs, dtype=bool)
    reached[members] = True
    candidates = np.flatnonzero(reached)
    column = np.full(num_docs, -1, dtype=np.int64)
    column[candidates] = np.arange(len(candidates))
    best = np.repeat(floor[:, None], len(candidates), axis=1)  # imputed by default
    best[np.repeat(token, sizes), column[members]] = np.repeat(
        top_scores.reshape(-1)[order], sizes
    )
    return candidates, best.sum(axis=0, dtype=np.float32)
