"""The register-tile MaxSim of ``scores.kernels.maxsim_jit`` with a per-token affine step.

For a compressed token ``x = (c + g w) / n`` (centroid ``c``, gain ``g``,
quantised residual shape ``w``, norm ``n``), ``q . x = (q . c + g q . w) / n``.
``q . c`` is the query-centroid score already computed for the IVF probe, so
the decoder need only write ``g w`` (no centroid pass, no norm pass: ``1 / n``
is computed once per segment) and the tile, before folding its accumulators
into the running maximum, adds each token's centroid-score row and scales by
its ``1 / n``:

    best[i] = max(best[i], (acc[t, i] + S[c_t, i]) * s_t)

The tile is the same LLVM vector IR as the plain kernel's (see that module
for the why); the affine step is two vector operations per accumulator.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ...scores.kernels.maxsim_jit import (
    _F32,
    _I64,
    _ROWS,
    _VEC,
    LANES,
    _broadcast,
    _fold_max,
    _prefetch,
    _products,
)


def _make_affine_tile(rows: int, width: int):
    """An intrinsic: affine MaxSim of ``rows`` tokens against ``16 * width`` columns.

    ``tile(doc, q, dim, stride, best, bias, scale, column)``: as the plain
    tile (byte addresses ``doc``, ``q``, ``best``), plus ``bias`` (address of
    ``rows`` int64 byte addresses, each token's centroid-score row) and
    ``scale`` (address of ``rows`` float32 scales); ``column`` (bytes) is
    added to each bias row address, the tile's first query column.
    """

    @intrinsic
    def tile(typingctx, doc, q, dim, stride, best, bias, scale, column):
        sig = types.void(*([types.int64] * 8))

        def codegen(context, builder, signature, args):
            doc_addr, q_addr, dim_v, stride_v, best_addr, bias_addr, scale_addr, col = (
                args
            )
            fptr, vptr = _F32.as_pointer(), _VEC.as_pointer()
            doc_p = builder.inttoptr(doc_addr, fptr)
            q_p = builder.inttoptr(q_addr, fptr)
            best_p = builder.inttoptr(best_addr, fptr)
            bias_p = builder.inttoptr(bias_addr, _I64.as_pointer())
            scale_p = builder.inttoptr(scale_addr, fptr)
            acc = _products(builder, doc_p, q_p, dim_v, stride_v, rows, width)
            values = []
            for r in range(rows):
                at = ir.Constant(_I64, r)
                s = _broadcast(builder, builder.load(builder.gep(scale_p, [at])))
                row_addr = builder.add(builder.load(builder.gep(bias_p, [at])), col)
                row_p = builder.inttoptr(row_addr, fptr)
                out = []
                for w in range(width):
                    slot = builder.gep(row_p, [ir.Constant(_I64, LANES * w)])
                    bv = builder.load(builder.bitcast(slot, vptr), align=4)
                    total = builder.fadd(builder.load(acc[r][w]), bv)
                    out.append(builder.fmul(total, s))
                values.append(out)
            _fold_max(builder, best_p, values, width)

        return sig, codegen

    return tile


_tile_wide = _make_affine_tile(_ROWS, 2)
_tile_wide_one = _make_affine_tile(1, 2)
_tile_narrow = _make_affine_tile(_ROWS, 1)
_tile_narrow_one = _make_affine_tile(1, 1)


@njit(nogil=True, cache=True, inline="always")
def _rows(
    tile, tile_one, doc, length, dim, q, stride, best, bias, scale, column
):  # pragma: no cover - compiled
    """Fold ``length`` token rows at byte address ``doc`` into ``best``."""
    t = 0
    tile_bytes = 4 * _ROWS * dim
    while t + _ROWS <= length:
        _prefetch(doc + 4 * (t + _ROWS) * dim, tile_bytes)
        tile(
            doc + 4 * t * dim, q, dim, stride, best, bias + 8 * t, scale + 4 * t, column
        )
        t += _ROWS
    left = length - t
    if left > 2 and length >= _ROWS:
        # The last full tile overlaps rows already folded (a maximum is
        # idempotent and the affine step is per row).
        at = length - _ROWS
        tile(
            doc + 4 * at * dim,
            q,
            dim,
            stride,
            best,
            bias + 8 * at,
            scale + 4 * at,
            column,
        )
    else:
        while t < length:
            tile_one(
                doc + 4 * t * dim, q, dim, stride, best, bias + 8 * t, scale + 4 * t,
                column,
            )  # fmt: skip
            t += 1


@njit(nogil=True, cache=True)
def affine_segment(doc, length, dim, q, stride, best, bias, scale):  # pragma: no cover
    """Fold ``length`` tokens at ``doc`` into ``best`` (all columns), affine per token.

    ``bias``: address of ``length`` int64 addresses of the tokens'
    centroid-score rows (``stride`` float32 each, the query's columns);
    ``scale``: address of ``length`` float32 scales.
    """
    column = 0
    while column + 2 * LANES <= stride:
        q_at, best_at = q + 4 * column, best + 4 * column
        _rows(
            _tile_wide, _tile_wide_one, doc, length, dim, q_at, stride, best_at,
            bias, scale, 4 * column,
        )  # fmt: skip
        column += 2 * LANES
    if column < stride:
        q_at, best_at = q + 4 * column, best + 4 * column
        _rows(
            _tile_narrow, _tile_narrow_one, doc, length, dim, q_at, stride, best_at,
            bias, scale, 4 * column,
        )  # fmt: skip
