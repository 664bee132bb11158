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
``prefer_exact(num_tokens)``
    Whether an exact scan of ``num_tokens`` vectors is expected to be cheaper
    than the IVF path (small collections, small subsets).

Every function takes ``segments[s].live`` (tombstones) into account and never
returns a deleted row. ``allowed`` (optional, per segment: a sorted int64 array
of rows) restricts results to a subset.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...scores.kernels.maxsim import maxsim_flat
from ...utils.threads import one_torch_thread, outer_num_threads
from . import ivf
from .centroid_stage import CentroidTable, maxsim_centroids, maxsim_centroids_torch
from .compressed import ScoringBook, maxsim_codes, maxsim_codes_torch, run_tasks
from .defaults import (  # noqa: F401 - the defaults are part of this interface
    default_n_centroid_scores,
    default_n_full_scores,
    default_n_ivf_probe,
    prefer_exact,
)
from .token_stage import TokenLists, probe_tokens, token_scores

Hit = tuple[int, int, float]  # (segment number, row in segment, score)
_QUERY_CHUNK = 128  # queries whose centroid scores are held at once
_REUSE_MAX_QUERIES = 2  # calls up to this size take q . c from the probe's scores


@dataclass
class SegmentView:
    """Arrays of one immutable segment.

    Attributes
    ----------
    tokens
        ``(T, D)`` float16 token vectors, document after document; None for a
        compressed segment.
    offsets
        ``(N + 1,)`` int64 row offsets of the documents into ``tokens``.
    indptr, docs
        CSR centroid -> documents (``(K + 1,)`` int64, ``(nnz,)`` int32), or
        None for a segment without IVF (exact-only indexes).
    live
        ``(N,)`` bool, False for deleted documents; None when all are live.
    codes, packed, gains
        A compressed segment's ``(T,)`` centroid numbers, ``(T, W)`` uint8
        packed residuals and ``(T,)`` float32 gains (:mod:`.codec`); None for
        a float16 segment.
    device_codes, device_packed, device_gains
        The same as torch tensors on an accelerator (or CPU) when the index
        searches through torch; None for the numba path.
    scales
        A compressed segment's ``(T,)`` float32 ``1 / |c + g w|``
        (:func:`.compressed.inverse_norms`), computed when it opens: the
        numba path then scores ``q . c`` from the centroid scores and decodes
        only ``g w``. None: the full decode.
    token_lists
        The same tokens regrouped by centroid (:mod:`.token_stage`), built
        when a compressed segment opens for the numba path; its candidates
        are then ranked by the token stage. None: no token stage.
    """

    tokens: np.ndarray | None
    offsets: np.ndarray
    indptr: np.ndarray | None = None
    docs: np.ndarray | None = None
    live: np.ndarray | None = None
    codes: np.ndarray | None = None
    packed: np.ndarray | None = None
    gains: np.ndarray | None = None
    device_codes: torch.Tensor | None = None
    device_packed: torch.Tensor | None = None
    device_gains: torch.Tensor | None = None
    scales: np.ndarray | None = None
    token_lists: TokenLists | None = None

    @property
    def num_docs(self) -> int:
        return len(self.offsets) - 1


def _rows(segment: SegmentView, allowed: np.ndarray | None) -> np.ndarray:
    rows = (
        np.arange(segment.num_docs, dtype=np.int64)
        if allowed is None
        else np.asarray(allowed, dtype=np.int64)
    )
    if segment.live is not None:
        rows = rows[segment.live[rows]]
    return rows


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
        r = _rows(segment, None if allowed is None else allowed[s])
        seg_ids.append(np.full(len(r), s, dtype=np.int64))
        rows.append(r)
        scores.append(np.stack(score_rows(queries, segment, [r] * len(queries), book)))
    if not rows:
        return [[] for _ in queries]
    seg_all, rows_all = np.concatenate(seg_ids), np.concatenate(rows)
    scores_all = np.concatenate(scores, axis=1)
    return [_top_k(seg_all, rows_all, scores_all[i], k) for i in range(len(queries))]


def _candidates(
    query: np.ndarray,
    centroid_scores: np.ndarray,
    segments: Sequence[SegmentView],
    n_ivf_probe: int,
    n_pool: int,
    allowed: Sequence[np.ndarray | None] | None,
    book: ScoringBook | None,
    threads: int | None = None,
) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
    """One query's candidate rows per segment number, with their approximate scores.

    A segment with token lists (and ``book``) is scored by the token stage
    (:func:`.token_stage.token_scores`), the others by the IVF probe
    (``ivf.probe``). The pool keeps the best ``n_pool`` rows by approximate
    score across segments (sorted rows, and their scores); a segment without
    lists is scanned whole (its scores None).
    """
    seg_ids, rows, approx, chosen = [], [], [], {}
    probed = None
    for s, segment in enumerate(segments):
        subset = None if allowed is None else allowed[s]
        if segment.indptr is None:  # small segment: exact scores directly
            chosen[s] = (_rows(segment, subset), None)
            continue
        if segment.token_lists is not None and book is not None:
            if probed is None:
                probed = probe_tokens(centroid_scores, n_ivf_probe)
            r, a = token_scores(
                query, centroid_scores, *probed, segment.token_lists, book.weights,
                keep=_keep_mask(segment, subset), num_threads=threads,
            )  # fmt: skip
        else:
            r, a = ivf.probe(
                centroid_scores, segment.indptr, segment.docs, segment.num_docs,
                n_ivf_probe,
            )  # fmt: skip
        keep = np.ones(len(r), dtype=bool)
        if segment.live is not None:
            keep &= segment.live[r]
        if subset is not None:
            subset = np.asarray(subset, dtype=np.int64)
            if len(subset) == 0:
                keep[:] = False
            else:
                position = np.minimum(np.searchsorted(subset, r), len(subset) - 1)
                keep &= subset[position] == r
        seg_ids.append(np.full(int(keep.sum()), s, dtype=np.int64))
        rows.append(r[keep])
        approx.append(a[keep])
    pool_seg = np.concatenate(seg_ids) if seg_ids else np.zeros(0, np.int64)
    pool_rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    pool_approx = np.concatenate(approx) if approx else np.zeros(0, np.float32)
    if len(pool_rows) > n_pool:
        best = np.argpartition(-pool_approx, n_pool - 1)[:n_pool]
        pool_seg, pool_rows, pool_approx = (
            pool_seg[best], pool_rows[best], pool_approx[best],
        )  # fmt: skip
    for s in np.unique(pool_seg).tolist():
        mine = pool_seg == s
        order = np.argsort(pool_rows[mine], kind="stable")
        chosen[s] = (pool_rows[mine][order], pool_approx[mine][order])
    return chosen


def _keep_mask(segment: SegmentView, subset: np.ndarray | None) -> np.ndarray | None:
    """``(N,)`` bool of the live rows in ``subset``; None when every row is kept."""
    if segment.live is None and subset is None:
        return None
    keep = (
        np.ones(segment.num_docs, dtype=bool)
        if segment.live is None
        else np.array(segment.live, dtype=bool)
    )
    if subset is not None:
        allowed = np.zeros(segment.num_docs, dtype=bool)
        allowed[np.asarray(subset, dtype=np.int64)] = True
        keep &= allowed
    return keep


def _best(rows: dict[int, np.ndarray], scores: dict[int, np.ndarray], n: int):
    """The ``n`` best rows by score across segments, sorted per segment."""
    segs = list(rows)
    if sum(len(rows[s]) for s in segs) <= n:
        return rows
    seg_all = np.concatenate([np.full(len(rows[s]), s, np.int64) for s in segs])
    row_all = np.concatenate([rows[s] for s in segs])
    keep = np.argpartition(-np.concatenate([scores[s] for s in segs]), n - 1)[:n]
    seg_all, row_all = seg_all[keep], row_all[keep]
    return {s: np.sort(row_all[seg_all == s]) for s in np.unique(seg_all).tolist()}


def _centroid_stage(
    query_scores: Sequence[np.ndarray],
    segments: Sequence[SegmentView],
    pools: list[dict[int, tuple[np.ndarray, np.ndarray | None]]],
    n_full_scores: int,
) -> list[dict[int, np.ndarray]]:
    """Each query's rows to re-score fully, from its IVF pool.

    Rows of compressed segments are ranked by their centroid-only MaxSim
    (:func:`.centroid_stage.maxsim_centroids`) and the best ``n_full_scores``
    kept; rows of float16 segments (format 2, no codes) by their probe
    score, the best ``n_full_scores`` of them; scanned segments are kept
    whole.
    """
    coded = [
        s
        for s, seg in enumerate(segments)
        if seg.codes is not None and seg.indptr is not None and seg.token_lists is None
    ]
    approx: list[dict[int, np.ndarray]] = [{} for _ in pools]
    if coded:
        table = None
        for s in coded:
            rows = [p[s][0] if s in p else np.zeros(0, np.int64) for p in pools]
            if not any(len(r) for r in rows):
                continue
            segment = segments[s]
            if segment.device_codes is not None:
                device = segment.device_codes.device
                scored = maxsim_centroids_torch(
                    [torch.from_numpy(q).to(device) for q in query_scores],
                    segment.device_codes, segment.offsets, rows,
                )  # fmt: skip
            else:
                if table is None:
                    table = CentroidTable.build(query_scores)
                scored = maxsim_centroids(table, segment.codes, segment.offsets, rows)
            for i, (r, v) in enumerate(zip(rows, scored)):
                if len(r):
                    approx[i][s] = v
    chosen = []
    for i, pool in enumerate(pools):
        mine: dict[int, np.ndarray] = {}
        ranked = {s: pool[s][0] for s in approx[i]}
        mine.update(_best(ranked, approx[i], n_full_scores))
        # Token-stage and float16 segments come ranked by their own pool
        # scores (token-stage scores are close to the full MaxSim, probe
        # scores are not: each kind keeps its own n_full_scores).
        for tokens in (True, False):
            plain = {
                s: r
                for s, (r, a) in pool.items()
                if a is not None
                and s not in ranked
                and (segments[s].token_lists is not None) == tokens
            }
            mine.update(_best(plain, {s: pool[s][1] for s in plain}, n_full_scores))
        mine.update({s: r for s, (r, a) in pool.items() if a is None})
        chosen.append(mine)
    return chosen


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
        pools = _all_candidates(
            chunk, query_scores, segments, n_ivf_probe, n_pool, allowed, book
        )
        if n_pool > n_full_scores:
            chosen = _centroid_stage(query_scores, segments, pools, n_full_scores)
        else:
            chosen = [{s: r for s, (r, _) in pool.items()} for pool in pools]
        results.extend(_full_scores(chunk, segments, chosen, k, book, query_scores))
    return results


def _all_candidates(
    queries: Sequence[np.ndarray],
    query_scores: Sequence[np.ndarray],
    segments: Sequence[SegmentView],
    n_ivf_probe: int,
    n_pool: int,
    allowed: Sequence[np.ndarray | None] | None,
    book: ScoringBook | None,
) -> list[dict[int, tuple[np.ndarray, np.ndarray | None]]]:
    """:func:`_candidates` of every query of a chunk.

    One query splits its token stage between the cores; several run side by
    side, one core each (no split to balance, no hand-over per query).
    """
    workers = min(outer_num_threads(), os.cpu_count() or 1)
    if len(queries) < 2 or workers < 2:
        return [
            _candidates(q, s, segments, n_ivf_probe, n_pool, allowed, book)
            for q, s in zip(queries, query_scores)
        ]
    pools: list = [None] * len(queries)
    step = -(-len(queries) // workers)

    def task(first: int):
        def run() -> None:
            for j in range(first, min(first + step, len(queries))):
                pools[j] = _candidates(
                    queries[j], query_scores[j], segments, n_ivf_probe, n_pool,
                    allowed, book, threads=1,
                )  # fmt: skip

        return run

    run_tasks([task(a) for a in range(0, len(queries), step)], workers)
    return pools


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
