"""Kernel of the token stage (:mod:`.token_stage`), compiled by numba.

Documents are processed in blocks of ``BLOCK`` consecutive rows: the
``(BLOCK, Lq)`` best-score scratch stays in the L2 cache, where a scratch
over every document (``(N, Lq)``, 6.6 MB at 50k documents) turned each
update into a cache miss. Each probed centroid's tokens are sorted by
document, so a block reads a contiguous run of every probed list.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._codes_jit import _shape

BLOCK = 4096  # documents per block: 4,096 x 32 query tokens x 4 B = 512 KB
EMPTY = np.float32(-3.0e38)  # "no token found" (fastmath: no infinities)


@njit(nogil=True, cache=True, inline="always")
def _first_at_least(docs, start, end, row):  # pragma: no cover - compiled
    """First position in ``docs[start:end]`` (sorted) holding ``row`` or more."""
    while start < end:
        middle = (start + end) >> 1
        if docs[middle] < row:
            start = middle + 1
        else:
            end = middle
    return start


# fastmath: no NaN reaches here (queries are checked at the entry, EMPTY is
# finite); it let LLVM vectorise the dot products (~2x at 10x SciFact).
@njit(nogil=True, cache=True, fastmath=True)
def stage(
    centroids,
    group_starts,
    group_tokens,
    scores,
    starts,
    docs,
    packed,
    gains,
    scales,
    query,
    weights,
    keep,
    imputed,
    first_row,
    end_row,
    rows_out,
    scores_out,
):  # pragma: no cover - compiled
    """Approximate MaxSim of the documents ``first_row:end_row`` reached by the probes.

    Every token ``x`` of a probed centroid ``c = centroids[u]`` (its tokens
    are ``starts[c]:starts[c + 1]`` of the centroid-ordered arrays, sorted by
    document ``docs[x]``) is decoded once (``w``) and scored against
    each query token ``i`` that probed ``c`` (``group_tokens[group_starts[u]:
    group_starts[u + 1]]``): ``(scores[i, c] + g q_i . w) * scales[x]``. A
    document's estimate is ``sum_i max(best found for i, imputed[i])``.
    Documents with ``keep[d] == 0`` are skipped before decoding (``keep``
    empty: none). Writes the documents reached, in increasing order, to
    ``rows_out`` and their estimates to ``scores_out``; returns how many.
    """
    lq = query.shape[0]
    dim = query.shape[1]
    row = np.empty(weights.shape[0], dtype=np.float32)
    best = np.full((BLOCK, lq), EMPTY, dtype=np.float32)
    seen = np.zeros(BLOCK, dtype=np.bool_)
    base = np.float32(0.0)
    for i in range(lq):
        base += imputed[i]
    masked = len(keep) > 0
    found = 0
    # Each probed list's position, found once and moved forward block by
    # block (a search per list and block cost more than the scoring at 10x).
    cursor = np.empty(len(centroids), dtype=np.int64)
    for u in range(len(centroids)):
        c = centroids[u]
        cursor[u] = _first_at_least(docs, starts[c], starts[c + 1], first_row)
    for low in range(first_row, end_row, BLOCK):
        high = min(low + BLOCK, end_row)
        for u in range(len(centroids)):
            c = centroids[u]
            first, last = group_starts[u], group_starts[u + 1]
            end = starts[c + 1]
            x = cursor[u]
            while x < end and docs[x] < high:
                d = docs[x]
                if masked and keep[d] == 0:
                    x += 1
                    continue
                _shape(packed, x, weights, np.float32(1.0), row)  # w; g on the dot
                scale = scales[x]
                gain = gains[x]
                j = d - low
                seen[j] = True
                for m in range(first, last):
                    i = group_tokens[m]
                    dot = np.float32(0.0)
                    for k in range(dim):
                        dot += query[i, k] * row[k]
                    value = (scores[i, c] + gain * dot) * scale
                    if value > best[j, i]:
                        best[j, i] = value
                x += 1
            cursor[u] = x
        for j in range(high - low):
            if not seen[j]:
                continue
            seen[j] = False
            total = base
            for i in range(lq):
                above = best[j, i] - imputed[i]
                if above > 0:
                    total += above
                best[j, i] = EMPTY
            rows_out[found] = low + j
            scores_out[found] = total
            found += 1
    return found
