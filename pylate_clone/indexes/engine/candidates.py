"""Candidates of each query: the token stage or IVF probe, then the centroid stage.

Used by :func:`.search.search`: for each query, every segment's candidate
rows with an approximate score (:func:`all_candidates`), then the rows to
re-score fully (:func:`centroid_stage`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from ...utils.threads import outer_num_threads
from . import ivf
from .centroid_stage import CentroidTable, maxsim_centroids, maxsim_centroids_torch
from .compressed import ScoringBook, run_tasks
from .segment_view import SegmentView, live_rows
from .token_stage import probe_tokens, token_scores


def all_candidates(
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
            chosen[s] = (live_rows(segment, subset), None)
            continue
        keep = _keep_mask(segment, subset)
        if segment.token_lists is not None and book is not None:
            if probed is None:
                probed = probe_tokens(centroid_scores, n_ivf_probe)
            # the stage skips the rows outside `keep` itself, before decoding
            r, a = token_scores(
                query, centroid_scores, *probed, segment.token_lists, book.weights,
                keep=keep, num_threads=threads,
            )  # fmt: skip
        else:
            r, a = ivf.probe(
                centroid_scores, segment.indptr, segment.docs, segment.num_docs,
                n_ivf_probe,
            )  # fmt: skip
            if keep is not None:
                r, a = r[keep[r]], a[keep[r]]
        seg_ids.append(np.full(len(r), s, dtype=np.int64))
        rows.append(r)
        approx.append(a)
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


def centroid_stage(
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
