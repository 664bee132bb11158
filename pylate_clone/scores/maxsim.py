"""Exact MaxSim over a contiguous token store (the exact-search kernel).

A collection is stored as one ``(T, D)`` matrix of token vectors (float16 or
float32, possibly memory-mapped) plus document offsets ``(N + 1,)``: document
``j`` owns rows ``offsets[j]:offsets[j + 1]``. This module scores queries
against such a store without padding.

Interface contract (used by the indexes; keep it stable):

``maxsim_flat(queries, tokens, offsets, rows=None) -> (Q, n) float32``
    ``queries``: a list of ``(Lq_i, D)`` float32 matrices or a ``(Q, Lq, D)``
    array. ``rows``: int64 document numbers to score (default: all ``N``), in
    the order of the output columns. The score of a document is
    ``sum_i max_t <q_i, d_t>`` over its real tokens; a document with no tokens
    scores 0. Accumulation is float32 whatever the storage dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def maxsim_flat(
    queries: Sequence[np.ndarray] | np.ndarray,
    tokens: np.ndarray,
    offsets: np.ndarray,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """MaxSim of every query against documents of a flat token store.

    Parameters
    ----------
    queries
        ``(Q, Lq, D)`` array or a list of ``(Lq_i, D)`` float32 matrices.
    tokens
        ``(T, D)`` token vectors (float16 or float32), document after document.
    offsets
        ``(N + 1,)`` int64 row offsets into ``tokens``.
    rows
        Document numbers to score, shape ``(n,)``; None scores all ``N``.

    Returns
    -------
    np.ndarray
        ``(Q, n)`` float32 scores, columns in the order of ``rows``.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    if rows is None:
        rows = np.arange(len(offsets) - 1, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    starts, ends = offsets[rows], offsets[rows + 1]
    lengths = ends - starts
    out = np.zeros((len(queries), len(rows)), dtype=np.float32)
    nonempty = np.flatnonzero(lengths > 0)
    if len(nonempty) == 0:
        return out
    index = np.concatenate(
        [np.arange(starts[j], ends[j]) for j in nonempty]
    )  # naive reference gather; the optimised kernel replaces this
    gathered = np.asarray(tokens[index], dtype=np.float32)
    seg = np.zeros(len(nonempty), dtype=np.int64)
    np.cumsum(lengths[nonempty][:-1], out=seg[1:])
    for i, query in enumerate(queries):
        sims = gathered @ np.asarray(query, dtype=np.float32).T  # (t, Lq)
        out[i, nonempty] = np.maximum.reduceat(sims, seg, axis=0).sum(axis=1)
    return out
