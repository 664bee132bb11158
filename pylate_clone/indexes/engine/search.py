"""Search over segments: PLAID-style candidates, exact re-scoring, exact scan.

An index is a list of immutable segments sharing one codebook (centroids).
Each segment is seen here as a :class:`SegmentView` of arrays (memory-mapped
by the storage layer). These functions do no I/O and know nothing of user
ids: they return ``(segment number, row in segment, score)`` triples.

Interface contract (used by ``indexes.plaid`` / ``indexes.exact``; keep it
stable):

``search(queries, centroids, segments, k, n_ivf_probe, n_full_scores,
        allowed=None, book=None, n_centroid_scores=None)``
    PLAID: IVF candidates per segment (``ivf.probe``); for compressed
    segments the best ``n_centroid_scores`` by probe score are scored from
    their centroid codes (:mod:`.centroid_stage`) and the best
    ``n_full_scores`` of those re-scored from the codes (:mod:`.compressed`,
    ``book`` giving the codec); for float16 segments the best
    ``n_full_scores`` by probe score are re-scored with
    ``scores.kernels.maxsim.maxsim_flat``; top ``k``. The queries of one call
    share the centroid scoring matmul and, per segment, one re-scoring call
    (a candidate shared by several queries is decoded once).
``exact_search(queries, segments, k, book=None)``
    MaxSim over every live document (over the reconstructed vectors for a
    compressed segment).
``default_n_ivf_probe(num_centroids)``, ``default_n_full_scores(num_docs, k,
        nbits=None, token_stage=False)``, ``default_n_centroid_scores(n_full_scores)``
    Defaults used when the user leaves the knobs to None.
``prefer_exact(num_tokens, rescored_tokens=None)``
    Whether an exact scan of ``num_tokens`` vectors is expected to be cheaper
    than the IVF path (small collections, small subsets).

Every function takes ``segments[s].live`` (tombstones) into account and never
returns a deleted row. ``allowed`` (optional, per segment: a sorted int64 array
of rows) restricts results to a subset.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ...scores.kernels.maxsim import maxsim_flat
from ...utils.threads import one_torch_thread
from .candidates import all_candidates, centroid_stage
from .compressed import ScoringBook, maxsim_codes, maxsim_codes_torch
from .defaults import (
    default_n_centroid_scores,
    default_n_full_scores,
    default_n_ivf_probe,
    filter_probe_power,
    prefer_exact,
)
from .segment_view import SegmentView, live_rows

__all__ = [
    "SegmentView",
    "default_n_centroid_scores",
    "default_n_full_scores",
    "default_n_ivf_probe",
    "exact_search",
    "filter_probe_power",
    "prefer_exact",
    "score_rows",
    "search",
]

Hit = tuple[int, int, float]  # (segment number, row in segment, score)
_QUERY_CHUNK = 128  # queries whose centroid scores are held at once
_REUSE_MAX_QUERIES = 2  # calls up to this size take q . c from the probe's scores


def _top_k(
    segment_ids: np.ndarray, rows: np.ndarray, scores: np.ndarray, k: int
) -> list[Hit]:
    """Best ``k`` of one query's scored rows, ties broken by (segment, row)."""
    if len(scores) > k:
        keep = np.argpartition(-scores, k - 1)[:k]
        segment_ids, rows, scores = segment_ids[keep], rows[keep], scores[keep]
    order = np.lexsort((rows, segment_ids, -scores))
    return [
        (int(s), int(r), float(v))
        for s, r, v in zip(segment_ids[order], rows[order], scores[order])
    ]


def score_rows(
    queries: Sequence[np.ndarray],
    segment: SegmentView,
    rows: Sequence[np.ndarray],
    book: ScoringBook | None = None,
    query_scores: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """MaxSim of each query against its own ``rows`` of one segment, ``(n_i,)`` each.

    Float16 segments go through ``maxsim_flat`` (one call when every query
    has the same rows); compressed ones through the fused kernel, or the
    torch path when the segment has device tensors. ``query_scores``: each
    query's ``(Lq, K)`` centroid scores, which the fused kernel reuses when
    the segment has ``scales``.
    """
    if segment.packed is None:
        if len(rows) > 1 and all(r is rows[0] for r in rows):
            return list(maxsim_flat(queries, segment.tokens, segment.offsets, rows[0]))
        return [
            maxsim_flat([q], segment.tokens, segment.offsets, r)[0]
            for q, r in zip(queries, rows)
        ]
    if book is None:
        raise ValueError("a compressed segment needs the index's codec (book).")
    if segment.device_packed is not None:
        return maxsim_codes_torch(
            queries, book.codec, book.device_centroids, segment.device_codes,
            segment.device_packed, segment.device_gains, segment.offsets, rows,
        )  # fmt: skip
    # Reusing q . c pays for one query; in a batch the decode is shared by
    # the queries of a candidate anyway, and each pair then reads its own
    # query's (K, S) score block at random rows: 400 SciFact queries in one
    # call ran at 47-51 QPS reusing, 50-57 decoding whole (2026-12-07, load 2).
    reuse = (
        segment.scales is not None
        and query_scores is not None
        and len(queries) <= _REUSE_MAX_QUERIES
    )
    return maxsim_codes(
        queries, book, segment.codes, segment.packed, segment.gains,
        segment.offsets, rows, scales=segment.scales if reuse else None,
        query_scores=query_scores if reuse else None,
    )  # fmt: skip


def exact_search(
    queries: Sequence[np.ndarray],
    segments: Sequence[SegmentView],
    k: int,
    allowed: Sequence[np.ndarray | None] | None = None,
    book: ScoringBook | None = None,
) -> list[list[Hit]]:
    """Exact MaxSim top ``k`` of each query over the live documents."""
    if len(queries) == 0:
        return []
    seg_ids, rows, scores = [], [], []
    for s, segment in enumerate(segments):
        r = live_rows(segment, None if allowed is None else allowed[s])
        seg_ids.append(np.full(len(r), s, dtype=np.int64))
        rows.append(r)
        scores.append(np.stack(score_rows(queries, segment, [r] * len(queries), book)))
    if not rows:
        return [[] for _ in queries]
    seg_all, rows_all = np.concatenate(seg_ids), np.concatenate(rows)
    scores_all = np.concatenate(scores, axis=1)
    return [_top_k(seg_all, rows_all, scores_all[i], k) for i in range(len(queries))]


def search(
    queries: Sequence[np.ndarray],
    centroids: np.ndarray,
    segments: Sequence[SegmentView],
    k: int,
    n_ivf_probe: int,
    n_full_scores: int,
    allowed: Sequence[np.ndarray | None] | None = None,
    book: ScoringBook | None = None,
    n_centroid_scores: int | None = None,
) -> list[list[Hit]]:
    """PLAID-style top ``k`` of each query (approximate candidates, full scores).

    Per query: every segment's IVF lists give candidates and approximate
    scores (``ivf.probe``); deleted rows and rows outside ``allowed`` are
    dropped. For compressed segments the best ``n_centroid_scores`` across
    segments are scored from their tokens' centroid codes alone (PLAID's
    centroid interaction, :func:`.centroid_stage.maxsim_centroids`: no decode)
    and the best ``n_full_scores`` of those re-scored with MaxSim
    (:func:`score_rows`: the codes with ``book``); for float16 segments the
    best ``n_full_scores`` by probe score are re-scored from the vectors.
    The best ``k`` are returned. A segment without IVF lists (``indptr``
    None) is scanned. The queries of one call (in chunks of
    ``_QUERY_CHUNK``) share the centroid scoring matmul and, per segment,
    one re-scoring call.

    ``n_centroid_scores``: None uses :func:`default_n_centroid_scores`.
    """
    if len(queries) == 0:
        return []
    if n_centroid_scores is None:
        n_centroid_scores = default_n_centroid_scores(n_full_scores)
    n_pool = max(n_full_scores, n_centroid_scores)
    if not any(s.codes is not None and s.indptr is not None for s in segments):
        n_pool = n_full_scores
    centroids_t = torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32))
    queries = [np.ascontiguousarray(q, dtype=np.float32) for q in queries]
    results: list[list[Hit]] = []
    for c in range(0, len(queries), _QUERY_CHUNK):
        chunk = queries[c : c + _QUERY_CHUNK]
        # A (sum Lq, K) product; on one torch thread, since on a busy machine
        # a two-thread matmul of this size waits on the other pool's threads
        # (utils/threads.py).
        with one_torch_thread():
            stacked = torch.from_numpy(np.concatenate(chunk))
            all_scores = torch.mm(stacked, centroids_t.T).numpy()
        bounds = np.cumsum([0] + [len(q) for q in chunk])
        query_scores = [all_scores[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        pools = all_candidates(
            chunk, query_scores, segments, n_ivf_probe, n_pool, allowed, book
        )
        if n_pool > n_full_scores:
            chosen = centroid_stage(query_scores, segments, pools, n_full_scores)
        else:
            chosen = [{s: r for s, (r, _) in pool.items()} for pool in pools]
        results.extend(_full_scores(chunk, segments, chosen, k, book, query_scores))
    return results


def _full_scores(
    queries: Sequence[np.ndarray],
    segments: Sequence[SegmentView],
    chosen: list[dict[int, np.ndarray]],
    k: int,
    book: ScoringBook | None,
    query_scores: Sequence[np.ndarray],
) -> list[list[Hit]]:
    """Re-score each query's chosen rows with MaxSim; its top ``k``."""
    found: list[list[tuple[int, np.ndarray, np.ndarray]]] = [[] for _ in queries]
    for s, segment in enumerate(segments):
        asking = [i for i, c in enumerate(chosen) if len(c.get(s, ())) > 0]
        if not asking:
            continue
        rows = [chosen[i][s] for i in asking]
        scored = score_rows(
            [queries[i] for i in asking], segment, rows, book,
            [query_scores[i] for i in asking],
        )  # fmt: skip
        for i, r, v in zip(asking, rows, scored):
            found[i].append((s, r, v))
    results = []
    for parts in found:
        if not parts:
            results.append([])
            continue
        results.append(
            _top_k(
                np.concatenate([np.full(len(r), s, np.int64) for s, r, _ in parts]),
                np.concatenate([r for _, r, _ in parts]),
                np.concatenate([v for _, _, v in parts]),
                k,
            )
        )
    return results
