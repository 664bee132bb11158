"""Merge policy and compaction of the segmented indexes (a mixin of ``SegmentedIndex``).

Every add creates a segment, so segments would pile up; past
:data:`MAX_SEGMENTS`, the smallest :data:`MERGE_FACTOR` (by live documents)
are rewritten into one, in the same atomic commit style as any write (their
deleted rows are dropped on the way). Each document is thus rewritten about
``log(N) / log(MERGE_FACTOR)`` times over the life of the index, and a write
costs what it changes plus, now and then, one merge of small segments.
:meth:`MergeMixin.compact` rewrites everything into one segment.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..storage.faults import crash_point
from ..storage.segments import OpenSegment

MAX_SEGMENTS = 8
MERGE_FACTOR = 4
_STREAM_DOCS = 1024  # documents per batch when segments are re-read


class MergeMixin:
    """``merge()`` / ``compact()`` on top of ``_transaction`` and ``_write_segment``."""

    _segments: list[OpenSegment]
    _ids: Any
    #: Segments allowed before the policy merges the smallest ones.
    max_segments: int = MAX_SEGMENTS

    def _stream_live(
        self, segments: list[OpenSegment], batch: int = _STREAM_DOCS
    ) -> Iterator[tuple[list, list, list | None]]:
        """Live documents of ``segments`` as ``(ids, matrices, records)`` batches.

        ``records`` are the stored texts and metadata (None for a segment
        without a documents file), so they move with their vectors.
        """
        for segment in segments:
            rows = segment.live_rows().tolist()
            for start in range(0, len(rows), batch):
                chunk = rows[start : start + batch]
                records = None
                if "documents" in segment.extra:
                    records = self._stored_records(segment, chunk)
                yield (
                    [segment.ids[r] for r in chunk],
                    [segment.matrix(r) for r in chunk],
                    records,
                )

    def _rewrite(self, txn: Any, segments: list[OpenSegment]) -> None:
        """Write the live documents of ``segments`` as one new segment.

        A kind may override this to reuse what a segment already holds
        (Voyager grows a copy of the largest segment's graph).
        """
        self._write_segment(
            txn, self._stream_live(segments), replace=False, validate=False
        )

    def _merge_plan(self) -> list[OpenSegment]:
        """Tiered policy: past :data:`self.max_segments`, the smallest ones merge."""
        if len(self._segments) <= self.max_segments:
            return []
        by_size = sorted(self._segments, key=lambda s: len(s.ids) - len(s.deleted))
        return by_size[: max(2, min(MERGE_FACTOR, len(by_size)))]

    def _maybe_merge(self) -> None:
        if self._merge_plan():
            self.merge()

    def merge(self) -> MergeMixin:
        """Run one round of the merge policy now (also run after each write)."""
        with self._transaction("merge") as txn:
            chosen = self._merge_plan()
            if chosen:
                txn.drop_segments({s.name for s in chosen})
                if any(len(s.ids) > len(s.deleted) for s in chosen):
                    self._rewrite(txn, chosen)
                crash_point("merge_staged")
        return self

    def compact(self) -> MergeMixin:
        """Rewrite every live document into one segment, dropping deleted rows.

        Tombstoned vectors (and, for Voyager, their HNSW nodes) are reclaimed;
        PLAID retrains its codebook on the live collection.
        """
        with self._transaction("compact") as txn:
            txn.drop_segments({s.name for s in self._segments})
            txn.retrain = True
            if len(self._ids):
                self._rewrite(txn, list(self._segments))
            crash_point("compact_staged")
        return self
