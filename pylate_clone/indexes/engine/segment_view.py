"""The engine's view of one segment: plain arrays, no storage.

``SegmentView`` is what :mod:`.search` and :mod:`.candidates` take (the
storage layer builds it in ``segmented/views.py``); ``live_rows`` its live
rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .token_stage import TokenLists


@dataclass
class SegmentView:
    """Arrays of one immutable segment.

    Attributes
    ----------
    tokens
        ``(T, D)`` float16 token vectors, document after document; None for a
        compressed segment.
    offsets
        ``(N + 1,)`` int64 row offsets of the documents into ``tokens``.
    indptr, docs
        CSR centroid -> documents (``(K + 1,)`` int64, ``(nnz,)`` int32), or
        None for a segment without IVF (exact-only indexes).
    live
        ``(N,)`` bool, False for deleted documents; None when all are live.
    codes, packed, gains
        A compressed segment's ``(T,)`` centroid numbers, ``(T, W)`` uint8
        packed residuals and ``(T,)`` float32 gains (:mod:`.codec`); None for
        a float16 segment.
    device_codes, device_packed, device_gains
        The same as torch tensors on an accelerator (or CPU) when the index
        searches through torch; None for the numba path.
    scales
        A compressed segment's ``(T,)`` float32 ``1 / |c + g w|``
        (:func:`.compressed.inverse_norms`), computed when it opens: the
        numba path then scores ``q . c`` from the centroid scores and decodes
        only ``g w``. None: the full decode.
    token_lists
        The same tokens regrouped by centroid (:mod:`.token_stage`), built
        when a compressed segment opens for the numba path; its candidates
        are then ranked by the token stage. None: no token stage.
    """

    tokens: np.ndarray | None
    offsets: np.ndarray
    indptr: np.ndarray | None = None
    docs: np.ndarray | None = None
    live: np.ndarray | None = None
    codes: np.ndarray | None = None
    packed: np.ndarray | None = None
    gains: np.ndarray | None = None
    device_codes: torch.Tensor | None = None
    device_packed: torch.Tensor | None = None
    device_gains: torch.Tensor | None = None
    scales: np.ndarray | None = None
    token_lists: TokenLists | None = None

    @property
    def num_docs(self) -> int:
        return len(self.offsets) - 1


def live_rows(segment: SegmentView, allowed: np.ndarray | None) -> np.ndarray:
    """Live rows of ``segment``, all or those of ``allowed`` (sorted int64)."""
    rows = (
        np.arange(segment.num_docs, dtype=np.int64)
        if allowed is None
        else np.asarray(allowed, dtype=np.int64)
    )
    if segment.live is not None:
        rows = rows[segment.live[rows]]
    return rows
