"""Write a ``.npy`` file row block by row block, and read row ranges back.

A bounded-memory build appends each batch of token vectors to the segment's
``tokens.npy`` as it arrives, so the whole collection never sits in RAM. The
``.npy`` header states the shape, unknown until the last batch: the writer
reserves a fixed-size header and rewrites it in place when the file is closed
(the file lives in a staging folder that no reader sees until the commit).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .commit import open_for_write

_HEADER_BYTES = 128  # magic (6) + version (2) + length (2) + padded dict


def _header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    text = (
        f"{{'descr': {np.lib.format.dtype_to_descr(dtype)!r}, "
        f"'fortran_order': False, 'shape': {shape!r}, }}"
    )
    body = text.encode("latin1")
    pad = _HEADER_BYTES - 10 - len(body) - 1
    if pad < 0:  # pragma: no cover - would need a shape of ~80 digits
        raise ValueError(f"shape {shape} does not fit the reserved .npy header")
    body += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


class NpyAppender:
    """Append rows of a fixed trailing shape to a new ``.npy`` file.

    Parameters
    ----------
    path
        File to create (must not exist).
    dtype
        Element type stored (rows are cast to it).
    row_shape
        Shape of one row, e.g. ``(D,)`` for a ``(T, D)`` matrix or ``()``.
    """

    def __init__(self, path: Path, dtype: np.dtype | type, row_shape: tuple) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.rows = 0
        self._handle = open_for_write(self.path)
        self._handle.write(_header(self.dtype, (0, *self.row_shape)))

    def append(self, block: np.ndarray) -> None:
        """Append ``block`` of shape ``(n, *row_shape)``."""
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.row_shape:
            raise ValueError(
                f"rows of shape {block.shape[1:]} appended to {self.path.name}, "
                f"which holds rows of shape {self.row_shape}"
            )
        self._handle.write(memoryview(block).cast("B"))  # no copy
        self.rows += len(block)

    def close(self) -> None:
        """Write the final shape into the header and fsync the file."""
        if self._handle.closed:
            return
        self._handle.seek(0)
        self._handle.write(_header(self.dtype, (self.rows, *self.row_shape)))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()

    def abort(self) -> None:
        """Close without finishing (the staging folder is deleted by the caller)."""
        if not self._handle.closed:
            self._handle.close()


def save(path: Path, array: np.ndarray) -> None:
    """Write one complete array as a new ``.npy`` file through the fault hook."""
    array = np.asarray(array)
    writer = NpyAppender(path, array.dtype, array.shape[1:])
    try:
        if array.ndim == 0:  # pragma: no cover - not used for scalars
            raise ValueError("save() needs at least one dimension")
        writer.append(array)
        writer.close()
    except BaseException:
        writer.abort()
        raise


def read_rows(path: Path, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a ``.npy`` file read with plain file I/O.

    Unlike a memory map, the pages read are not kept mapped into the process,
    so scanning a large file this way keeps the resident set small.
    """
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version != (1, 0):  # pragma: no cover - this module writes 1.0 only
            raise ValueError(f"{path}: unexpected .npy version {version}")
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        if fortran:  # pragma: no cover - never written by this package
            raise ValueError(f"{path} is Fortran-ordered")
        row_items = int(np.prod(shape[1:], dtype=np.int64))
        stop = min(stop, shape[0])
        handle.seek(start * row_items * dtype.itemsize, os.SEEK_CUR)
        count = max(0, stop - start) * row_items
        data = np.fromfile(handle, dtype=dtype, count=count)
    return data.reshape((max(0, stop - start), *shape[1:]))
