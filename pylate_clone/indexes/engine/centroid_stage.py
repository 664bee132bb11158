"""PLAID's centroid stage: approximate MaxSim of candidates from their centroid codes.

Between the IVF probe and the decoded re-scoring (``search.search``): each
document token stands for its centroid, whose score against every query
token is already computed for the probe, so a candidate's approximate MaxSim
is a gather of one score row per token and a running maximum (Stanford
PLAID's centroid interaction). No decode: a small fraction of the cost of a
full score, so a deep pool can be ranked to pick the few re-scored.

Two paths with the same results: :func:`maxsim_centroids` (the numba kernel
:func:`._codes_jit.centroid_maxsim` on the thread pool of :mod:`.compressed`)
and :func:`maxsim_centroids_torch` (any torch device).

Interface contract (used by the search; keep it stable):

``CentroidTable.build(query_scores: Q x (Lq, K))``
``maxsim_centroids(table, codes (T,), offsets (N + 1,), rows: Q x (n_i,))
    -> Q x (n_i,) float32``
``maxsim_centroids_torch(query_scores: Q tensors, codes tensor, offsets, rows)``
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...utils.threads import outer_num_threads
from .compressed import _LANES, _task_bounds, run_tasks


@dataclass(frozen=True)
class CentroidTable:
    """Query-centroid scores of a call, laid out for :func:`maxsim_centroids`.

    Attributes
    ----------
    table
        Flat float32: query ``q``'s scores as a ``(K, width[q])`` block at
        ``start[q]``, its transposed ``(Lq, K)`` scores zero-padded to a
        multiple of 16 columns.
    start, width, lengths
        ``(Q,)`` int64 block starts, row widths and query lengths.
    """

    table: np.ndarray
    start: np.ndarray
    width: np.ndarray
    lengths: np.ndarray

    @classmethod
    def build(cls, query_scores: Sequence[np.ndarray]) -> CentroidTable:
        """From each query's ``(Lq, K)`` token x centroid scores."""
        lengths = np.array([len(s) for s in query_scores], dtype=np.int64)
        width = -(-np.maximum(lengths, 1) // _LANES) * _LANES
        k = query_scores[0].shape[1] if len(query_scores) else 0
        start = np.concatenate([[0], np.cumsum(width * k)[:-1]]).astype(np.int64)
        table = np.zeros(int((width * k).sum()), dtype=np.float32)
        for i, scores in enumerate(query_scores):
            block = table[start[i] : start[i] + width[i] * k].reshape(k, width[i])
            block[:, : lengths[i]] = np.asarray(scores).T
        return cls(table, start, width, lengths)


def maxsim_centroids(
    table: CentroidTable,
    codes: np.ndarray,
    offsets: np.ndarray,
    rows: Sequence[np.ndarray],
    num_threads: int | None = None,
) -> list[np.ndarray]:
    """Approximate MaxSim of each query against its rows, from centroid codes only.

    Each document token counts as its centroid: the score is
    ``sum_i max_t S[i, code[t]]`` with ``S`` the query's token x centroid
    scores (PLAID's centroid interaction). A gather per token, no decode:
    the cheap middle stage between the IVF probe and the full re-scoring.

    Parameters
    ----------
    table
        The queries' scores (:meth:`CentroidTable.build`), ``Q`` queries.
    codes
        ``(T,)`` centroid numbers of one segment's tokens (may be a memory map).
    offsets
        ``(N + 1,)`` int64 token offsets of the segment's documents.
    rows
        ``Q`` arrays of document rows, one per query.
    num_threads
        Worker threads; None uses torch's thread count.

    Returns
    -------
    list[np.ndarray]
        ``(n_i,)`` float32 scores per query, in the order of ``rows[i]``.
    """
    from ._codes_jit import centroid_maxsim  # numba compiles on first use

    if len(table.lengths) != len(rows):
        raise ValueError(
            f"rows must hold one array per query ({len(table.lengths)}), got "
            f"{len(rows)}."
        )
    offsets = np.asarray(offsets, dtype=np.int64)
    sizes = [len(r) for r in rows]
    pair_row = (
        np.concatenate([np.asarray(r, dtype=np.int64).reshape(-1) for r in rows])
        if rows
        else np.zeros(0, np.int64)
    )
    pair_query = np.repeat(np.arange(len(rows), dtype=np.int64), sizes)
    out = np.zeros(len(pair_row), dtype=np.float32)
    if len(pair_row):
        codes = np.asarray(codes)
        workers = num_threads or min(outer_num_threads(), os.cpu_count() or 1)
        # A gather costs ~1/20 of a decoded token: bigger tasks.
        tokens = (offsets[pair_row + 1] - offsets[pair_row]) // 8
        bounds = _task_bounds(tokens, workers)

        def task(a: int, b: int):
            def run() -> None:
                centroid_maxsim(
                    table.table, table.start, table.width, table.lengths,
                    pair_query[a:b], pair_row[a:b], offsets, codes, out[a:b],
                )  # fmt: skip

            return run

        run_tasks([task(a, b) for a, b in zip(bounds[:-1], bounds[1:])], workers)
    ends = np.cumsum(sizes)
    return np.split(out, ends[:-1]) if len(rows) else []


def maxsim_centroids_torch(
    query_scores: Sequence[torch.Tensor],
    codes: torch.Tensor,
    offsets: np.ndarray,
    rows: Sequence[np.ndarray],
) -> list[np.ndarray]:
    """:func:`maxsim_centroids` through torch on the device of ``codes``.

    ``query_scores``: each query's ``(Lq, K)`` token x centroid scores on the
    device. The candidates' codes are gathered there, their score columns
    taken from the query's matrix and reduced with a per-document maximum.
    """
    if len(query_scores) != len(rows):
        raise ValueError(
            f"rows must hold one array per query ({len(query_scores)}), got "
            f"{len(rows)}."
        )
    device = codes.device
    offsets = np.asarray(offsets, dtype=np.int64)
    results = []
    for scores, r in zip(query_scores, rows):
        r = np.asarray(r, dtype=np.int64).reshape(-1)
        starts, lengths = offsets[r], offsets[r + 1] - offsets[r]
        if len(r) == 0 or lengths.sum() == 0:
            results.append(np.zeros(len(r), dtype=np.float32))
            continue
        index = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(
            int(lengths.sum())
        )
        token_codes = codes[torch.from_numpy(index).to(device)].long()
        sims = scores.to(device=device, dtype=torch.float32)[:, token_codes]
        owner = torch.from_numpy(np.repeat(np.arange(len(r)), lengths)).to(device)
        best = torch.full((len(sims), len(r)), -torch.inf, device=device)
        best = best.scatter_reduce(
            1, owner.expand_as(sims), sims, reduce="amax", include_self=True
        )
        score = torch.where(torch.from_numpy(lengths > 0).to(device), best.sum(0), 0.0)
        results.append(score.cpu().numpy().astype(np.float32))
    return results
