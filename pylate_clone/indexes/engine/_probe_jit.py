"""The IVF probe's list expansion, compiled by numba (see :func:`.ivf.probe`)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def expand(top, top_scores, floor, indptr, docs, num_docs):  # pragma: no cover
    """Candidates reached by the probed lists and their approximate MaxSim.

    Parameters
    ----------
    top, top_scores
        ``(Lq, p)`` int64 probed centroids of each query token and their
        scores, best first along each row.
    floor
        ``(Lq,)`` float32: the score a token contributes to a document it did
        not reach (its best unprobed centroid's).
    indptr, docs
        CSR centroid -> documents of one segment.
    num_docs
        Documents in the segment.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        Reached documents ``(c,)`` int64 in the order first reached, and
        ``(c,)`` float32 approximate scores: per token its best probed score
        for the document (the first visit, lists being walked best first),
        else its floor; summed over tokens.
    """
    lq, p = top.shape
    seen = np.full(num_docs, -1, np.int32)  # last token that reached each doc
    column = np.full(num_docs, -1, np.int64)
    reached = np.empty(num_docs, np.int64)
    gain = np.zeros(num_docs, np.float32)
    count = 0
    base = np.float32(0.0)
    for i in range(lq):
        base += floor[i]
        for j in range(p):
            c = top[i, j]
            lift = top_scores[i, j] - floor[i]
            for at in range(indptr[c], indptr[c + 1]):
                d = docs[at]
                if seen[d] == i:
                    continue
                seen[d] = i
                col = column[d]
                if col < 0:
                    col = count
                    column[d] = col
                    reached[col] = d
                    count += 1
                gain[col] += lift
    out = np.empty(count, np.float32)
    for col in range(count):
        out[col] = gain[col] + base
    return reached[:count].copy(), out
