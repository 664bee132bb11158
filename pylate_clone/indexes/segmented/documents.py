"""Texts and metadata of a segmented index: arguments, reads, filters, keywords.

A mixin of :class:`~.index.SegmentedIndex`. The files are
:mod:`..storage.documents` (one read-only SQLite file per segment, committed
with the segment); this module joins them to the index's segments and ids.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..storage.documents import DOCUMENTS, DocumentsReader, keyword_query
from ..storage.filters import CompiledFilter, check_filter
from ..storage.idmap import DocumentId, normalize_ids
from ..storage.segments import OpenSegment

#: A ``(text, metadata JSON text)`` pair per document, or None for none of both.
Record = tuple[str | None, str | None]


def check_records(documents: Any, metadata: Any, count: int) -> list[Record] | None:
    """``documents`` / ``metadata`` of ``count`` documents as records (None: neither).

    Raises
    ------
    TypeError, ValueError
        Naming the argument and the position, e.g. ``metadata[3]``.
    """
    if documents is None and metadata is None:
        return None
    columns = []
    for name, values, kind in (
        ("documents", documents, str),
        ("metadata", metadata, dict),
    ):
        if values is None:
            columns.append([None] * count)
            continue
        if isinstance(values, (str, dict)) or not isinstance(values, Sequence):
            raise TypeError(
                f"{name} must be a list of one {kind.__name__} (or None) per "
                f"document, got {type(values).__name__}."
            )
        if len(values) != count:
            raise ValueError(
                f"{name} has {len(values)} entries for {count} documents_ids; give "
                "one per document (None where there is none)."
            )
        column = []
        for i, value in enumerate(values):
            if value is not None and not isinstance(value, kind):
                raise TypeError(
                    f"{name}[{i}] must be a {kind.__name__} or None, got "
                    f"{type(value).__name__}."
                )
            if kind is dict and value is not None:
                value = _metadata_json(value, f"{name}[{i}]")
            column.append(value)
        columns.append(column)
    return list(zip(*columns))


def _metadata_json(value: dict, where: str) -> str:
    if not all(isinstance(key, str) for key in value):
        raise TypeError(f"{where}: metadata keys must be strings.")
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where} is not JSON-able ({error}).") from None


class DocumentsMixin:
    """``get_documents``, filters and BM25 over the segments' documents files."""

    _segments: list[OpenSegment]
    _ids: Any

    def _open_documents(self, segment: OpenSegment, folder: Any) -> None:
        """Open the segment's documents file if it has one (under the reload lock)."""
        if DOCUMENTS in segment.record["files"]:
            segment.extra["documents"] = DocumentsReader(
                folder / DOCUMENTS, len(segment.ids)
            )

    def _stored_records(self, segment: OpenSegment, rows: list[int]) -> list[Record]:
        reader = segment.extra.get("documents")
        if reader is None:
            return [(None, None)] * len(rows)
        found = reader.get(rows)
        return [
            (text, None if meta is None else json.dumps(meta, ensure_ascii=False))
            for text, meta in (found.get(r, (None, None)) for r in rows)
        ]

    def _kept_records(
        self,
        ids: list[DocumentId],
        records: list[Record] | None,
        documents: Any,
        metadata: Any,
    ) -> list[Record] | None:
        """``records`` of an update, the stored text / metadata kept where not given."""
        if documents is not None and metadata is not None:
            return records
        old = {
            d["id"]: d for d in self._documents_of([i for i in ids if i in self._ids])
        }
        if not any(
            d["document"] is not None or d["metadata"] is not None for d in old.values()
        ):
            return records
        out = []
        for position, document_id in enumerate(ids):
            text, meta = records[position] if records else (None, None)
            stored = old.get(document_id)
            if stored is not None:
                if documents is None:
                    text = stored["document"]
                if metadata is None and stored["metadata"] is not None:
                    meta = json.dumps(stored["metadata"], ensure_ascii=False)
            out.append((text, meta))
        return out

    @property
    def has_documents(self) -> bool:
        """Whether any live segment stores texts or metadata."""
        self._sync()
        return any("documents" in s.extra for s in self._segments)

    def get_documents(self, documents_ids: Any) -> list[dict[str, Any]]:
        """Stored texts and metadata of documents.

        Parameters
        ----------
        documents_ids
            One id or a list of ids.

        Returns
        -------
        list[dict]
            One ``{"id", "document", "metadata"}`` per id, in order; None
            where nothing was stored, and for an id that is not in the index
            (as a key-value store answers a missing key).
        """
        ids = normalize_ids(documents_ids)
        self._sync()
        known = [i for i in ids if i in self._ids]
        found = {d["id"]: d for d in self._documents_of(known)}
        return [
            found.get(i) or {"id": i, "document": None, "metadata": None} for i in ids
        ]

    def _documents_of(self, ids: list[DocumentId]) -> list[dict[str, Any]]:
        """Records of ids known to the current view (no reload)."""
        where = [self._positions(i) for i in ids]
        by_segment: dict[int, list[int]] = {}
        for s, row in where:
            by_segment.setdefault(s, []).append(row)
        found: dict[tuple[int, int], tuple] = {}
        for s, rows in by_segment.items():
            reader = self._segments[s].extra.get("documents")
            if reader is not None:
                for row, pair in reader.get(rows).items():
                    found[(s, row)] = pair
        out = []
        for document_id, key in zip(ids, where):
            text, meta = found.get(key, (None, None))
            out.append({"id": document_id, "document": text, "metadata": meta})
        return out

    def _filter_allowed(
        self, compiled: CompiledFilter, base: list[np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """Per segment, the sorted live rows matching a compiled filter (AND ``base``)."""
        key, sql, params = compiled
        allowed = []
        for s, segment in enumerate(self._segments):
            reader = segment.extra.get("documents")
            rows = (
                np.empty(0, np.int64)
                if reader is None
                else reader.match(key, sql, params)
            )
            if base is not None:
                rows = np.intersect1d(rows, base[s], assume_unique=True)
            if segment.live is not None and len(rows):
                rows = rows[segment.live[rows]]
            allowed.append(rows)
        return allowed

    def filter_ids(self, filter: dict[str, Any]) -> list[DocumentId]:
        """Ids of the live documents whose metadata match ``filter``."""
        compiled = check_filter(filter)
        self._sync()
        allowed = self._filter_allowed(compiled)
        return [
            self._segments[s].ids[r]
            for s, rows in enumerate(allowed)
            for r in rows.tolist()
        ]

    def keyword_search(
        self, queries: Sequence[str], k: int, filter: dict[str, Any] | None = None
    ) -> list[list[dict[str, Any]]]:
        """BM25 (SQLite FTS5) top ``k`` of each text query over the stored texts.

        Each segment ranks its own texts (its own document frequencies) and
        the lists are merged by score; :meth:`compact` makes one segment and
        so collection-wide statistics.

        Parameters
        ----------
        queries
            Query texts.
        k
            Documents per query.
        filter
            Optional metadata filter (see the module :mod:`..storage.filters`).

        Returns
        -------
        list[list[dict]]
            Per query, up to ``k`` ``{"id", "score"}`` best first (BM25).
        """
        compiled = check_filter(filter)
        self._sync()
        return [self._keyword_hits(q, k, compiled) for q in queries]

    def _keyword_hits(
        self, text: str, k: int, compiled: CompiledFilter | None
    ) -> list[dict[str, Any]]:
        query = keyword_query(text)
        if query is None:
            return []
        where = None if compiled is None else compiled[1:]
        hits = []
        for segment in self._segments:
            reader = segment.extra.get("documents")
            if reader is None:
                continue
            # Deleted rows are still in the file: ask for enough to fill k.
            rows, scores = reader.keywords(query, k + len(segment.deleted), where)
            for row, score in zip(rows.tolist(), scores.tolist()):
                if segment.live is None or segment.live[row]:
                    hits.append((score, segment.ids[row]))
        hits.sort(key=lambda hit: -hit[0])
        return [{"id": i, "score": float(s)} for s, i in hits[:k]]


def widened_probe(
    probe: int, selectivity: float, num_centroids: int, power: float = 1.0
) -> int:
    """Centroids to probe when only a fraction ``selectivity`` of documents may match.

    The IVF lists of the probed centroids hold about ``selectivity`` times
    fewer allowed documents, so the probe grows as ``selectivity ** -power``
    (``power`` 1: as many allowed documents as unfiltered; the engine's
    ``filter_probe_power`` gives it per search stage), bounded by 16 times
    the setting and by the codebook.
    """
    if selectivity >= 1:
        return probe
    factor = min(16.0, max(selectivity, 1e-9) ** -power)
    return int(min(num_centroids, math.ceil(probe * factor)))
