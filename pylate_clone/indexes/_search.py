"""Search over segments: PLAID-style candidates, exact re-scoring, exact scan.

An index is a list of immutable segments sharing one codebook (centroids).
Each segment is seen here as a :class:`SegmentView` of arrays (memory-mapped
by the storage layer). These functions do no I/O and know nothing of user
ids: they return ``(segment number, row in segment, score)`` triples.

Interface contract (used by ``indexes.plaid`` / ``indexes.exact``; keep it
stable):

``search(queries, centroids, segments, k, n_ivf_probe, n_full_scores)``
    PLAID: IVF candidates per segment (``_ivf.probe``), the best
    ``n_full_scores`` by approximate score across segments, re-scored exactly
    (``scores.maxsim.maxsim_flat``), top ``k``.
``exact_search(queries, segments, k)``
    Exact MaxSim over every live document.
``default_n_ivf_probe(num_centroids)``, ``default_n_full_scores(num_docs, k)``
    Defaults used when the user leaves the knobs to None.
``prefer_exact(num_tokens)``
    Whether an exact scan of ``num_tokens`` vectors is expected to be cheaper
    than the IVF path (small collections, small subsets).

Every function takes ``segments[s].live`` (tombstones) into account and never
returns a deleted row. ``allowed`` (optional, per segment: a sorted int64 array
of rows) restricts results to a subset.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..scores.maxsim import maxsim_flat
from . import _ivf

Hit = tuple[int, int, float]  # (segment number, row in segment, score)


@dataclass
class SegmentView:
    """Arrays of one immutable segment.

    Attributes
    ----------
    tokens
        ``(T, D)`` float16 token vectors, document after document.
    offsets
        ``(N + 1,)`` int64 row offsets of the documents into ``tokens``.
    indptr, docs
        CSR centroid -> documents (``(K + 1,)`` int64, ``(nnz,)`` int32), or
        None for a segment without IVF (exact-only indexes).
    live
        ``(N,)`` bool, False for deleted documents; None when all are live.
    """

    tokens: np.ndarray
    offsets: np.ndarray
    indptr: np.ndarray | None = None
    docs: np.ndarray | None = None
    live: np.ndarray | None = None

    @property
    def num_docs(self) -> int:
        return len(self.offsets) - 1


def default_n_ivf_probe(num_centroids: int) -> int:
    """Centroids probed per query token when ``n_ivf_probe`` is None."""
    return int(min(num_centroids, 8))


def default_n_full_scores(num_docs: int, k: int) -> int:
    """Candidates re-scored exactly when ``n_full_scores`` is None."""
    return int(max(4 * k, 256))


def prefer_exact(num_tokens: int) -> bool:
    """Whether an exact scan of ``num_tokens`` vectors beats the IVF path."""
    return num_tokens <= 50_000


def _rows(segment: SegmentView, allowed: np.ndarray | None) -> np.ndarray:
    rows = (
        np.arange(segment.num_docs, dtype=np.int64)
        if allowed is None
        else np.asarray(allowed, dtype=np.int64)
    )
    if segment.live is not None:
        rows = rows[segment.live[rows]]
    return rows


def _top_k(scored: list[tuple[int, np.ndarray, np.ndarray]], k: int) -> list[Hit]:
    hits = [
        (s, int(r), float(v))
        for s, rows, values in scored
        for r, v in zip(rows, values)
    ]
    return heapq.nlargest(k, hits, key=lambda hit: hit[2])


def exact_search(
    queries: Sequence[np.ndarray],
    segments: Sequence[SegmentView],
    k: int,
    allowed: Sequence[np.ndarray | None] | None = None,
) -> list[list[Hit]]:
    """Exact MaxSim top ``k`` of each query over the live documents."""
    per_segment = []
    for s, segment in enumerate(segments):
        rows = _rows(segment, None if allowed is None else allowed[s])
        scores = maxsim_flat(queries, segment.tokens, segment.offsets, rows)
        per_segment.append((s, rows, scores))
    return [
        _top_k([(s, rows, scores[i]) for s, rows, scores in per_segment], k)
        for i in range(len(queries))
    ]


def search(
    queries: Sequence[np.ndarray],
    centroids: np.ndarray,
    segments: Sequence[SegmentView],
    k: int,
    n_ivf_probe: int,
    n_full_scores: int,
    allowed: Sequence[np.ndarray | None] | None = None,
) -> list[list[Hit]]:
    """PLAID-style top ``k`` of each query (approximate candidates, exact scores)."""
    results = []
    for query in queries:
        centroid_scores = np.asarray(query, dtype=np.float32) @ centroids.T
        pool: list[tuple[float, int, int]] = []
        for s, segment in enumerate(segments):
            rows, approx = _ivf.probe(
                centroid_scores,
                segment.indptr,
                segment.docs,
                segment.num_docs,
                n_ivf_probe,
            )
            keep = np.ones(len(rows), dtype=bool)
            if segment.live is not None:
                keep &= segment.live[rows]
            if allowed is not None and allowed[s] is not None:
                keep &= np.isin(rows, allowed[s])
            pool.extend(
                zip(approx[keep].tolist(), [s] * int(keep.sum()), rows[keep].tolist())
            )
        best = heapq.nlargest(n_full_scores, pool)
        scored = []
        for s, segment in enumerate(segments):
            rows = np.asarray([r for _, ss, r in best if ss == s], dtype=np.int64)
            if len(rows):
                values = maxsim_flat([query], segment.tokens, segment.offsets, rows)[0]
                scored.append((s, rows, values))
        results.append(_top_k(scored, k))
    return results
