"""Kernels of the token stage (:mod:`.token_stage`), compiled by numba.

The scratch ``best`` is ``(Lq, N)`` float32, every entry ``EMPTY`` between
calls; ``touched`` lists the flat positions ``i * N + d`` a call filled, so
that reading and resetting them costs the tokens scored, not ``Lq * N``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._codes_jit import _shape

EMPTY = np.float32(-3.0e38)


@njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
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
    best,
    touched,
):  # pragma: no cover - compiled
    """Best score per (query token, document) over the probed centroids' tokens.

    For each probed centroid ``c`` (``centroids[u]``, probed by the query
    tokens ``group_tokens[group_starts[u]:group_starts[u + 1]]``) every token
    ``x`` of ``c`` (``starts[c]:starts[c + 1]`` of the centroid-ordered
    arrays) is decoded once (``g * w``) and scored against each of those
    query tokens ``i``: ``(scores[i, c] + q_i . g w) * scales[x]``. Tokens
    of a document ``d`` with ``keep[d] == 0`` are skipped before decoding
    (``keep`` empty: none). Returns how many entries of ``touched`` it wrote.
    """
    dim = query.shape[1]
    num_docs = best.shape[1]
    row = np.empty(weights.shape[0], dtype=np.float32)
    count = 0
    masked = len(keep) > 0
    for u in range(len(centroids)):
        c = centroids[u]
        first, last = group_starts[u], group_starts[u + 1]
        for x in range(starts[c], starts[c + 1]):
            d = docs[x]
            if masked and keep[d] == 0:
                continue
            _shape(packed, x, weights, gains[x], row)
            scale = scales[x]
            for m in range(first, last):
                i = group_tokens[m]
                dot = np.float32(0.0)
                for k in range(dim):
                    dot += query[i, k] * row[k]
                value = (scores[i, c] + dot) * scale
                held = best[i, d]
                if value > held:
                    if held == EMPTY:
                        touched[count] = i * num_docs + d
                        count += 1
                    best[i, d] = value
    return count


@njit(nogil=True, cache=True)
def merge_into(
    best, touched, count, other, other_touched, other_count
):  # pragma: no cover
    """Fold ``other`` (another worker's scratch) into ``best``; empty ``other``."""
    flat, source = best.reshape(-1), other.reshape(-1)
    for j in range(other_count):
        e = other_touched[j]
        value = source[e]
        source[e] = EMPTY
        held = flat[e]
        if held == EMPTY:
            touched[count] = e
            count += 1
            flat[e] = value
        elif value > held:
            flat[e] = value
    return count


@njit(nogil=True, cache=True)
def collect(best, touched, count, imputed, rows, out):  # pragma: no cover - compiled
    """Per document reached: sum over query tokens of max(its best found, imputed).

    The imputed score stands for the document's tokens outside the probed
    centroids, so a found token below it does not lower the estimate.

    Writes the documents to ``rows[:n]`` and their scores to ``out[:n]`` (in
    the order first reached), empties ``best`` and returns ``n``.
    """
    num_docs = best.shape[1]
    flat = best.reshape(-1)
    base = np.float32(0.0)
    for i in range(len(imputed)):
        base += imputed[i]
    position = np.full(num_docs, -1, dtype=np.int64)
    found = 0
    for j in range(count):
        e = touched[j]
        i = e // num_docs
        d = e - i * num_docs
        value = flat[e]
        flat[e] = EMPTY
        p = position[d]
        if p < 0:
            p = found
            position[d] = found
            rows[found] = d
            out[found] = base
            found += 1
        gain = value - imputed[i]
        if gain > 0:
            out[p] += gain
    return found
