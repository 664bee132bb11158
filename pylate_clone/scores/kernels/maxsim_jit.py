"""A fused MaxSim kernel for ragged candidate lists, compiled by numba.

``rank.rerank`` scores each query against its own candidates: every matmul is
only ``Lq`` (32) columns wide, and a BLAS path must first copy the candidates
into one block, write the ``(Lq, t)`` similarities out and read them back for
the segment max. This kernel does the whole MaxSim of one candidate in
registers instead, reading each candidate where the caller keeps it:

* a register tile of ``_ROWS`` (8 with AVX-512) document tokens x 32 query
  tokens (two 16-lane float32 vectors per token): for every dimension ``k``
  the two query vectors ``q[:, k]`` are loaded once and each document value
  ``d[t, k]`` is broadcast and fused-multiply-added into its two accumulators
  (the shape of a BLAS micro-kernel, so the loop runs at the FMA units' rate);
* at the end of the tile the accumulators are folded into the running
  per-query-token maximum, so no similarity ever reaches memory;
* one candidate after another, straight from its own buffer (pointers, no
  concatenation).

The tile is written as LLVM vector IR (``numba.extending.intrinsic``) because
numba's loop vectorizer does not keep a ``(rows, 32)`` accumulator in
registers. The vectors are generic ``<16 x float>``: LLVM lowers them to
AVX-512, AVX2 or SSE (or NEON) as the host allows. The maximum is
``llvm.maximum`` (NaN-propagating, like ``np.maximum``), so a NaN in a
candidate reaches its score and the caller's finiteness check sees it.

Query columns are padded with zeros to a multiple of 16; the padding columns
are never summed. Every candidate's score depends on its own tokens only (the
same arithmetic whatever its position or neighbours), so identical candidates
tie exactly.
"""

from __future__ import annotations

import numpy as np
from llvmlite import binding, ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16  # float32 lanes of one vector


def _tile_rows() -> int:
    """Document tokens per register tile: ``2 * rows`` accumulator vectors.

    With AVX-512 (32 vector registers) 8 rows fit: 16 accumulators, 2 query
    vectors, a broadcast. Elsewhere a 16-lane vector takes 2 (AVX2) or 4
    registers of 16 or 32; 4 rows was the fastest on AVX2 code here.
    """
    try:
        avx512 = bool(binding.get_host_cpu_features().get("avx512f", False))
    except RuntimeError:  # LLVM cannot read this host's features
        avx512 = False
    return 8 if avx512 else 4


_ROWS = _tile_rows()

_F32 = ir.FloatType()
_VEC = ir.VectorType(_F32, LANES)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


def _products(builder, doc_p, q_p, dim_v, stride_v, rows: int, width: int):
    """Emit a register tile's FMA loop; returns its ``rows x width`` accumulator slots.

    For every dimension ``k`` the ``width`` query vectors ``q[k, 16 w:]`` are
    loaded once and each of the ``rows`` document values ``doc[r, k]`` is
    broadcast and fused-multiply-added into ``acc[r][w]`` (stack slots that
    LLVM promotes to registers). Shared by this module's tile and the affine
    tile of ``indexes/engine/_affine_jit.py``.
    """
    vptr = _VEC.as_pointer()
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_VEC, [_VEC, _VEC, _VEC]), "llvm.fma.v16f32"
    )
    zero = ir.Constant(_VEC, [0.0] * LANES)
    acc = [
        [cgutils.alloca_once_value(builder, zero) for _ in range(width)]
        for _ in range(rows)
    ]
    row_start = [builder.mul(ir.Constant(_I64, r), dim_v) for r in range(rows)]
    with cgutils.for_range(builder, dim_v) as loop:
        k = loop.index
        q_row = builder.mul(k, stride_v)
        qv = [
            builder.load(
                builder.bitcast(
                    builder.gep(
                        q_p, [builder.add(q_row, ir.Constant(_I64, LANES * w))]
                    ),
                    vptr,
                ),
                align=4,
            )
            for w in range(width)
        ]
        for r in range(rows):
            value = builder.load(builder.gep(doc_p, [builder.add(row_start[r], k)]))
            b = _broadcast(builder, value)
            for w in range(width):
                total = builder.call(fma, [b, qv[w], builder.load(acc[r][w])])
                builder.store(total, acc[r][w])
    return acc


def _broadcast(builder, value):
    """A float splatted to all 16 lanes."""
    undef = ir.Constant(_VEC, ir.Undefined)
    splat = ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES)
    element = builder.insert_element(undef, value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(element, undef, splat)


def _fold_max(builder, best_p, values, width: int) -> None:
    """``best[16 w:16 (w + 1)] = max(best, values[r][w] for every r)``."""
    vptr = _VEC.as_pointer()
    vmax = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(_VEC, [_VEC, _VEC]), "llvm.maximum.v16f32"
    )
    for w in range(width):
        slot = builder.bitcast(
            builder.gep(best_p, [ir.Constant(_I64, LANES * w)]), vptr
        )
        running = builder.load(slot, align=4)
        for row in values:
            running = builder.call(vmax, [running, row[w]])
        builder.store(running, slot, align=4)


def _make_tile(rows: int, width: int):
    """An intrinsic: MaxSim of ``rows`` tokens against ``16 * width`` query columns.

    ``tile(doc, q, dim, stride, best)`` with byte addresses ``doc`` (the first
    of ``rows`` consecutive float32 token rows of length ``dim``), ``q`` (the
    first column of the query block inside a ``(dim, stride)`` float32
    column-major query) and ``best`` (``16 * width`` running maxima, updated).
    """

    @intrinsic
    def tile(typingctx, doc, q, dim, stride, best):
        sig = types.void(
            types.int64, types.int64, types.int64, types.int64, types.int64
        )

        def codegen(context, builder, signature, args):
            doc_addr, q_addr, dim_v, stride_v, best_addr = args
            fptr = _F32.as_pointer()
            doc_p = builder.inttoptr(doc_addr, fptr)
            q_p = builder.inttoptr(q_addr, fptr)
            best_p = builder.inttoptr(best_addr, fptr)
            acc = _products(builder, doc_p, q_p, dim_v, stride_v, rows, width)
            values = [[builder.load(a) for a in row] for row in acc]
            _fold_max(builder, best_p, values, width)

        return sig, codegen

    return tile


@intrinsic
def _prefetch(typingctx, address, nbytes):
    """Ask for the cache lines of ``[address, address + nbytes)`` (into L2).

    The kernel is compute-bound on cached data but, one thread streaming
    candidates from memory, waits on DRAM latency: the next tile (and the
    next candidate's first tile) is requested while this one computes. A
    prefetch never faults, so reading past a buffer's end is harmless.
    """
    sig = types.void(types.int64, types.int64)

    def codegen(context, builder, signature, args):
        address_v, nbytes_v = args
        pointer = ir.IntType(8).as_pointer()
        prefetch = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [pointer, _I32, _I32, _I32]),
            "llvm.prefetch.p0",
        )
        line = ir.Constant(_I64, 64)
        lines = builder.udiv(builder.add(nbytes_v, ir.Constant(_I64, 63)), line)
        with cgutils.for_range(builder, lines) as loop:
            at = builder.inttoptr(
                builder.add(address_v, builder.mul(loop.index, line)), pointer
            )
            # read, locality 2 (prefetcht1: L2 and out), data cache
            builder.call(
                prefetch,
                [at, ir.Constant(_I32, 0), ir.Constant(_I32, 2), ir.Constant(_I32, 1)],
            )

    return sig, codegen


_tile_wide = _make_tile(_ROWS, 2)
_tile_wide_one = _make_tile(1, 2)
_tile_narrow = _make_tile(_ROWS, 1)
_tile_narrow_one = _make_tile(1, 1)


@njit(nogil=True, cache=True, inline="always")
def _rows(tile, tile_one, doc, length, dim, q, stride, best):  # pragma: no cover
    """Fold ``length`` token rows at byte address ``doc`` into ``best``."""
    t = 0
    tile_bytes = 4 * _ROWS * dim
    while t + _ROWS <= length:
        _prefetch(doc + 4 * (t + _ROWS) * dim, tile_bytes)
        tile(doc + 4 * t * dim, q, dim, stride, best)
        t += _ROWS
    left = length - t
    if left > 2 and length >= _ROWS:
        # The last full tile overlaps rows already folded: a maximum is
        # idempotent, and one full-speed tile beats several one-row tiles
        # (one row keeps only 2 accumulators busy: FMA-latency bound).
        tile(doc + 4 * (length - _ROWS) * dim, q, dim, stride, best)
    else:
        while t < length:
            tile_one(doc + 4 * t * dim, q, dim, stride, best)
            t += 1


@njit(nogil=True, cache=True)
def _segment(doc, length, dim, q, stride, best):  # pragma: no cover - compiled
    """Fold ``length`` tokens at byte address ``doc`` into ``best`` (all columns)."""
    column = 0
    while column + 2 * LANES <= stride:  # 32-column tiles, then one 16-column tile
        q_at, best_at = q + 4 * column, best + 4 * column
        _rows(_tile_wide, _tile_wide_one, doc, length, dim, q_at, stride, best_at)
        column += 2 * LANES
    if column < stride:
        q_at, best_at = q + 4 * column, best + 4 * column
        _rows(_tile_narrow, _tile_narrow_one, doc, length, dim, q_at, stride, best_at)


@njit(nogil=True, cache=True)
def ragged_maxsim(
    query_columns, query_length, addresses, lengths, floor_below, out
):  # pragma: no cover - compiled
    """PyLate-padded MaxSim of one query against candidates given by address.

    Parameters
    ----------
    query_columns
        ``(D, S)`` float32, C-contiguous: the query transposed, ``S`` a multiple
        of 16, columns ``query_length:`` zero.
    query_length
        Real query tokens ``Lq`` (the columns summed).
    addresses, lengths
        ``(n,)`` int64: byte address and token count of each candidate, a
        C-contiguous float32 ``(length, D)`` matrix the caller keeps alive.
    floor_below
        Candidates shorter than this have each per-token maximum floored at 0
        (PyLate zero-pads to the longest candidate without a mask).
    out
        ``(n,)`` float32, written: the scores (0 for an empty candidate).
    """
    dim, stride = query_columns.shape
    q = query_columns.ctypes.data
    best = np.empty(stride, np.float32)
    best_addr = best.ctypes.data
    for j in range(len(addresses)):
        length = lengths[j]
        if length == 0:
            out[j] = 0.0
            continue
        best[:] = -np.inf
        if j + 1 < len(addresses):
            _prefetch(addresses[j + 1], 4 * min(lengths[j + 1], _ROWS) * dim)
        _segment(addresses[j], length, dim, q, stride, best_addr)
        total = np.float32(0.0)
        floor = length < floor_below
        for i in range(query_length):
            value = best[i]
            if floor and value < 0.0:  # NaN compares False: it propagates
                value = np.float32(0.0)
            total += value
        out[j] = total
