"""Fused decode + MaxSim over compressed candidates, compiled by numba.

A candidate document is stored as centroid codes and packed residual bytes
(:mod:`.codec`). Decoding a whole segment, or even every candidate, to float32
before scoring would write and read back 512 bytes per token; here each
candidate is decoded into a small float32 scratch tile that stays in cache
(one look-up per dimension in the codec's per-dimension weights, times
the token's gain), then
scored by the register-tile MaxSim of ``scores.maxsim_jit`` straight from
that tile. No decoded vector reaches memory beyond the scratch.

The work is a flat list of ``(query, row)`` pairs, sorted by row by the
caller: consecutive pairs on the same row reuse the decoded tile, so a batch
of queries sharing candidates decodes each of them once.

Scores are true MaxSim (a document's real tokens only; an empty document
scores 0), the semantics of ``scores.maxsim.maxsim_flat``, over the
reconstructed vectors.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...scores.kernels.maxsim_jit import _segment
from ._affine_jit import affine_segment


@njit(nogil=True, cache=True, inline="always", fastmath={"contract", "nsz"})
def _shape(packed, t, weights, g, row):  # pragma: no cover - compiled
    """``row[:Dp] = g * w_t``: one look-up per dimension in ``weights``.

    ``weights`` ``(Dp, 2**nbits)`` float32 (8 KB at 4 bits: it stays in L1);
    the bucket of dimension ``p * per + j`` is in bits ``j * nbits`` of byte
    ``p``. One branch per bit width, so each inner loop has constant shifts
    and trip count (a generic loop over ``per`` ran ~3x slower).
    """
    width = packed.shape[1]
    buckets = weights.shape[1]
    if buckets == 16:
        for p in range(width):
            b = np.int64(packed[t, p])
            d = 2 * p
            row[d] = g * weights[d, b & 15]
            row[d + 1] = g * weights[d + 1, b >> 4]
    elif buckets == 4:
        for p in range(width):
            b = np.int64(packed[t, p])
            d = 4 * p
            row[d] = g * weights[d, b & 3]
            row[d + 1] = g * weights[d + 1, (b >> 2) & 3]
            row[d + 2] = g * weights[d + 2, (b >> 4) & 3]
            row[d + 3] = g * weights[d + 3, b >> 6]
    else:
        for p in range(width):
            b = np.int64(packed[t, p])
            d = 8 * p
            for j in range(8):
                row[d + j] = g * weights[d + j, (b >> j) & 1]


@njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
def _decode(
    codes, packed, gains, centroids, weights, normalize, start, count, scratch
):  # pragma: no cover - compiled
    """Write tokens ``start:start + count`` reconstructed into ``scratch[:count]``.

    Two passes per token: the look-ups (:func:`_shape`, ``g * w``) into the
    scratch row, then one contiguous pass adding the centroid row and summing
    the squared norm, which LLVM vectorises (``reassoc`` lets it reorder that
    sum: the same order for every token, so identical tokens still decode
    alike).
    """
    dim = scratch.shape[1]
    for i in range(count):
        t = start + i
        row = scratch[i]
        _shape(packed, t, weights, gains[t], row)
        centroid = centroids[codes[t]]
        total = np.float32(0.0)
        for d in range(dim):
            value = centroid[d] + row[d]
            row[d] = value
            total += value * value
        if normalize:
            scale = np.float32(1.0) / np.float32(max(np.sqrt(total), 1e-12))
            for d in range(dim):
                row[d] *= scale


@njit(nogil=True, cache=True, fastmath=True)
def centroid_maxsim(
    table, query_start, query_width, query_lengths, pair_query, pair_row,
    offsets, codes, out,
):  # pragma: no cover - compiled  # fmt: skip
    """Approximate MaxSim of ``(query, row)`` pairs from the centroid codes only.

    A document token is stood in for by its centroid, so its similarity to
    query token ``i`` is the query-centroid score, already computed for the
    probe: per pair, a gather of one score row per document token and a
    running maximum, no decode.

    Parameters
    ----------
    table
        Flat float32: query ``q``'s scores as a C-contiguous ``(K, width_q)``
        block at ``query_start[q]`` (centroid ``c``'s row holds the scores of
        the query's tokens, zero past its length).
    query_start, query_width
        ``(Q,)`` int64: each query's block start and row width (a multiple of
        16, so the loop vectorises; columns past the query's length are
        folded but never summed).
    query_lengths
        ``(Q,)`` int64 real tokens of each query.
    pair_query, pair_row
        ``(n,)`` int64: the query and document row of each pair.
    offsets
        ``(N + 1,)`` int64 token offsets of the documents.
    codes
        ``(T,)`` centroid numbers of the tokens.
    out
        ``(n,)`` float32, written: the approximate score of each pair (0 for
        an empty document).
    """
    acc = np.empty(16, np.float32)
    for j in range(len(pair_row)):
        qi = pair_query[j]
        r = pair_row[j]
        base = query_start[qi]
        width = query_width[qi]
        start = offsets[r]
        end = offsets[r + 1]
        total = np.float32(0.0)
        # 16 columns at a time, a fixed-size inner loop on a local
        # accumulator (a loop over the query's width ran ~2x slower).
        for c0 in range(0, width, 16):
            for i in range(16):
                acc[i] = -np.inf
            for t in range(start, end):
                at = base + np.int64(codes[t]) * width + c0
                for i in range(16):
                    acc[i] = max(acc[i], table[at + i])
            for i in range(min(16, query_lengths[qi] - c0)):
                total += acc[i]
        out[j] = total if end > start else np.float32(0.0)


@njit(nogil=True, cache=True, fastmath={"reassoc", "contract", "nsz"})
def inverse_norms(
    codes, packed, gains, centroids, weights, start, end, out
):  # pragma: no cover - compiled
    """``out[t - start] = 1 / |c_t + g_t w_t|`` for tokens ``start:end``.

    The scale of a renormalised reconstruction, computed once per segment so
    the scoring kernel need not decode the centroid part (:func:`codes_maxsim`).
    """
    scratch = np.empty((1, centroids.shape[1]), np.float32)
    dim = scratch.shape[1]
    for t in range(start, end):
        _decode(codes, packed, gains, centroids, weights, False, t, 1, scratch)
        total = np.float32(0.0)
        for d in range(dim):
            total += scratch[0, d] * scratch[0, d]
        out[t - start] = np.float32(1.0) / np.float32(max(np.sqrt(total), 1e-12))


@njit(nogil=True, cache=True)
def _decode_shape(packed, gains, weights, start, count, scratch):  # pragma: no cover
    """``scratch[i] = g_t * w_t`` for tokens ``start:start + count``: no centroid."""
    for i in range(count):
        _shape(packed, start + i, weights, gains[start + i], scratch[i])


@njit(nogil=True, cache=True)
def codes_maxsim(
    query_columns,
    query_lengths,
    pair_query,
    pair_row,
    offsets,
    codes,
    packed,
    gains,
    centroids,
    weights,
    normalize,
    scales,
    centroid_scores,
    out,
):  # pragma: no cover - compiled
    """MaxSim of ``(query, row)`` pairs over compressed documents.

    Two ways, the same scores up to float rounding:

    * ``centroid_scores`` empty: each candidate is decoded whole (centroid
      plus ``g w``, renormalised) and scored by the plain register tile;
    * otherwise ``q . x = (S[c, q] + q . (g w)) * s`` per token: only ``g w``
      is decoded and the affine tile (:mod:`._affine_jit`) adds each token's
      centroid-score row and scales by ``s = 1 / |c + g w|``.

    Parameters
    ----------
    query_columns
        ``(Q, Dp, S)`` float32, C-contiguous: each query transposed, ``Dp`` the
        padded dimension (``W * per``, zero rows past ``D``), ``S`` a multiple
        of 16, columns past the query's length zero.
    query_lengths
        ``(Q,)`` int64 real tokens of each query (the columns summed).
    pair_query, pair_row
        ``(n,)`` int64: the query and document row of each pair, sorted by
        row (pairs of one row are consecutive, so its tile is decoded once).
    offsets
        ``(N + 1,)`` int64 token offsets of the documents.
    codes, packed, gains
        ``(T,)`` centroid numbers, ``(T, W)`` uint8 packed residual shapes and
        ``(T,)`` float32 residual gains.
    centroids
        ``(K, Dp)`` float32, zero columns past ``D``.
    weights
        ``(Dp, 2**nbits)`` float32 bucket weights of each dimension (zero rows
        past ``D``).
    normalize
        Whether each reconstruction is divided by its norm (whole decode).
    scales
        ``(T,)`` float32 ``1 / |c + g w|`` (1 when the codec does not
        renormalise); read only with ``centroid_scores``.
    centroid_scores
        ``(Q, K, S)`` float32, C-contiguous: each query's token x centroid
        scores, transposed, columns past its length zero; ``(0, 0, 0)`` for
        the whole decode.
    out
        ``(n,)`` float32, written: the score of each pair.
    """
    num_queries, dim, stride = query_columns.shape
    affine = centroid_scores.shape[0] > 0
    k = centroid_scores.shape[1]
    longest = 1
    for j in range(len(pair_row)):
        r = pair_row[j]
        longest = max(longest, offsets[r + 1] - offsets[r])
    scratch = np.empty((longest, dim), np.float32)
    bias_offset = np.empty(longest, np.int64)
    bias = np.empty(longest, np.int64)
    scale = np.empty(longest, np.float32)
    best = np.empty(stride, np.float32)
    scratch_addr = scratch.ctypes.data
    best_addr = best.ctypes.data
    q_base = query_columns.ctypes.data
    q_bytes = 4 * dim * stride
    s_bytes = 4 * k * stride
    decoded = -1
    for j in range(len(pair_row)):
        r = pair_row[j]
        start = offsets[r]
        length = offsets[r + 1] - start
        if length == 0:
            out[j] = 0.0
            continue
        if r != decoded:
            if affine:
                _decode_shape(packed, gains, weights, start, length, scratch)
                for i in range(length):
                    bias_offset[i] = 4 * stride * np.int64(codes[start + i])
                    scale[i] = scales[start + i]
            else:
                _decode(codes, packed, gains, centroids, weights, normalize,
                        start, length, scratch)  # fmt: skip
            decoded = r
        qi = pair_query[j]
        best[:] = -np.inf
        if affine:
            at = centroid_scores.ctypes.data + qi * s_bytes
            for i in range(length):
                bias[i] = at + bias_offset[i]
            affine_segment(
                scratch_addr, length, dim, q_base + qi * q_bytes, stride, best_addr,
                bias.ctypes.data, scale.ctypes.data,
            )  # fmt: skip
        else:
            _segment(
                scratch_addr, length, dim, q_base + qi * q_bytes, stride, best_addr
            )
        total = np.float32(0.0)
        for i in range(query_lengths[qi]):
            total += best[i]
        out[j] = total
