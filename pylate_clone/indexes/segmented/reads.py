"""Reads of a segmented index by id: vectors, allowed rows, hits to results.

A mixin of :class:`~.index.SegmentedIndex` (its reload and id map).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..storage.idmap import DocumentId, normalize_ids
from ..storage.segments import OpenSegment


class ReadsMixin:
    """Id lookups over the view of the last reload."""

    _segments: list[OpenSegment]
    _ids: Any
    _seg_of: np.ndarray
    _row_of: np.ndarray

    @property
    def num_segments(self) -> int:
        """Number of live segments."""
        self._sync()
        return len(self._segments)

    def _positions(self, document_id: Any) -> tuple[int, int]:
        position = self._ids.position(document_id)
        return int(self._seg_of[position]), int(self._row_of[position])

    def get_documents_embeddings(
        self, document_ids: list[list[DocumentId]]
    ) -> list[list[np.ndarray]]:
        """Stored token vectors of documents, grouped like the input.

        Parameters
        ----------
        document_ids
            Groups of ids, e.g. one list of candidates per query.

        Returns
        -------
        list[list[np.ndarray]]
            Per group, per document, a float32 ``(L_d, H)`` matrix.

        Raises
        ------
        KeyError
            If an id is not in the index.
        """
        # No reload up front: the retriever fetches the candidates of the search
        # it just ran, and must read them from that search's view even if
        # another process committed in between. Only an id unknown to the view
        # triggers a reload.
        out = []
        for group in document_ids:
            matrices = []
            for document_id in normalize_ids(group):
                try:
                    s, row = self._positions(document_id)
                except KeyError:
                    self._sync()
                    try:
                        s, row = self._positions(document_id)
                    except KeyError:
                        raise KeyError(
                            f"Document id {document_id!r} is not in the index."
                        ) from None
                matrices.append(self._segments[s].matrix(row))
            out.append(matrices)
        return out

    def _allowed(self, group: Iterable[Any]) -> list[np.ndarray]:
        """Per segment, the sorted rows of the live ids in ``group``."""
        allowed = [np.empty(0, dtype=np.int64) for _ in self._segments]
        for s, rows in self._locate(
            [i for i in dict.fromkeys(group) if _is_id(i)]
        ).items():
            allowed[s] = np.sort(rows)
        return allowed

    def _hits_to_results(self, hits: list) -> list[dict[str, Any]]:
        return [
            {"id": self._segments[s].ids[row], "score": float(score)}
            for s, row, score in hits
        ]


def _is_id(value: Any) -> bool:
    return isinstance(value, (str, int, np.integer)) and not isinstance(value, bool)
