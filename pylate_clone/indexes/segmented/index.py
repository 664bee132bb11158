"""Shared engine of the segmented indexes (:class:`Exact`, :class:`PLAID`, :class:`Voyager`).

State on disk is a list of immutable segments plus tombstones, committed by
one atomic manifest (``_segments``). In memory an index holds the segments it
has opened (token stores memory-mapped) and one id map rebuilt from the
segments' ids minus the tombstones.

Every change goes through :meth:`SegmentedIndex._transaction`: take the
writer lock (waiting up to ``lock_timeout`` seconds), reload to the latest
commit, stage new files, commit the manifest, reload, collect garbage. A
writer that was opened before someone else's commit therefore never loses
that commit. Readers reload themselves: every search, ``len`` and
``documents_ids`` first compares the manifest's inode/mtime/size with the
last seen and, when it changed, opens only the new segments and tombstones.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tqdm

from ..base import Base
from ..storage import npy_stream
from ..storage.commit import (
    DEFAULT_LOCK_TIMEOUT,
    IndexFormatError,
    describe_os_error,
    write_lock,
)
from ..storage.documents import DocumentsWriter
from ..storage.faults import crash_point
from ..storage.idmap import DocumentId, DocumentIdMap, describe_ids, normalize_ids
from ..storage.segments import OFFSETS, TOKENS, OpenSegment, SegmentStore, Transaction
from ..utils import (
    as_batches,
    check_documents,
    check_finite,
    check_int,
    check_timeout,
    to_float32_numpy,
)
from .documents import DocumentsMixin, check_records
from .merge import MergeMixin
from .reads import ReadsMixin

_SLICE_DOCS = 2048  # documents concatenated at a time while writing


class SegmentedIndex(ReadsMixin, DocumentsMixin, MergeMixin, Base):
    """Base of the segment-format indexes; see the module docstring.

    Subclasses implement the kind hooks: ``_params`` / ``_apply_params``
    (what the manifest records), ``_begin_segment`` / ``_on_batch`` /
    ``_finish_segment`` (kind files of a segment being written) and
    ``_open_segment`` (load them).

    Parameters
    ----------
    index_folder, index_name, override
        See :class:`~pylate_clone.indexes.Base`.
    show_progress
        Progress bars while writing.
    lock_timeout
        Seconds a writer waits for another process's write to finish before
        raising ``TimeoutError``.
    """

    storage_dtype: type = np.float16
    # Format versions of this kind's folders no longer read -> the advice.
    retired_versions: dict[int, str] = {}

    def __init__(
        self,
        index_folder: str | os.PathLike = "indexes",
        index_name: str = "colbert",
        override: bool = False,
        show_progress: bool = True,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        super().__init__(index_folder, index_name, override)
        self.show_progress = bool(show_progress)
        self.lock_timeout = check_timeout(lock_timeout)
        self._store = SegmentStore(self.index_path, self.kind, self.retired_versions)
        self._reload_lock = threading.RLock()
        self._segments: list[OpenSegment] = []
        self._manifest: dict[str, Any] | None = None
        self._stamp: tuple | None = None
        self._dim: int | None = None
        self._seg_of = np.empty(0, dtype=np.int32)
        self._row_of = np.empty(0, dtype=np.int64)
        self._open()

    # -- kind hooks --------------------------------------------------------------

    def _params(self) -> dict[str, Any]:
        return {"dim": self._dim}

    def _apply_params(self, params: dict[str, Any]) -> None:
        dim = params.get("dim")
        self._dim = None if dim is None else int(dim)

    def _load_codebook(
        self, array: np.ndarray | None, codec: np.ndarray | None = None
    ) -> None:
        """Kinds with a shared codebook (and residual codec) keep it here."""

    def _begin_segment(self, folder: Path) -> Any:
        return None

    def _on_batch(self, state: Any, block: np.ndarray, first_row: int, lengths):
        """Each written ``(T_b, H)`` float32 block: documents of ``lengths`` tokens from row ``first_row``."""

    def _finish_segment(
        self, state: Any, folder: Path, txn: Transaction, offsets: np.ndarray
    ) -> None:
        """Write the kind files of a segment whose tokens/offsets are written."""

    def _open_segment(self, segment: OpenSegment, folder: Path) -> None:
        """Load the kind files of a verified segment into ``segment.extra``."""

    # -- opening and reloading ------------------------------------------------

    def _load_committed(self) -> None:
        self._sync(force=True)
        self._collect_if_idle()

    def _start_empty(self) -> None:
        self._dim = None
        self._commit_empty()

    def _commit_empty(self) -> None:
        self._store.path.mkdir(parents=True, exist_ok=True)
        with write_lock(self._store.path, self.lock_timeout):
            previous = None
            if self._store.exists():
                with contextlib.suppress(IndexFormatError):
                    previous = self._store.read_manifest()
            manifest = {
                "generation": (previous["generation"] + 1) if previous else 0,
                "params": self._params(),
                "codebook": None,
                "num_documents": 0,
                "segments": [],
            }
            self._store.commit(manifest, previous)
            self._segments = []
            self._sync(force=True)
            self._store.collect_garbage(self._manifest)

    def _collect_if_idle(self) -> None:
        """Delete leftovers of interrupted writes when no writer is active."""
        with contextlib.suppress(TimeoutError, OSError):
            with write_lock(self._store.path, 0):
                self._store.collect_garbage(self._store.read_manifest())

    def _sync(self, force: bool = False) -> None:
        """Reload incrementally if another commit happened since the last look."""
        store = self._store
        stamp = store.stamp()
        if not force and stamp == self._stamp and self._manifest is not None:
            return
        # One reload at a time per instance (a server searches from threads).
        with self._reload_lock, store.reading():
            manifest = store.read_manifest()
            if (
                not force
                and self._manifest is not None
                and manifest["generation"] == self._manifest["generation"]
            ):
                self._stamp = stamp
                return
            self._apply_manifest(manifest)
        self._stamp = stamp

    def _apply_manifest(self, manifest: dict[str, Any]) -> None:
        store = self._store
        try:
            self._apply_params(manifest["params"])
        except (KeyError, TypeError, ValueError) as error:
            raise IndexFormatError(
                f"{store.manifest_path}: bad {self.kind} parameters ({error})."
            ) from None
        old = self._manifest or {}
        book, codec = manifest.get("codebook"), manifest.get("codec")
        if (book, codec) != (old.get("codebook"), old.get("codec")) or not old:
            self._load_codebook(*(e and store.read_array(e) for e in (book, codec)))
        opened = {s.name: s for s in self._segments}
        segments = []
        for record in manifest["segments"]:
            segment = opened.get(record["name"])
            tomb = record.get("tombstones")
            if segment is None:
                store.verify_segment(record)
                segment = OpenSegment(record, store.read_segment(record))
                self._open_segment(segment, store.path / record["name"])
                self._open_documents(segment, store.path / record["name"])
            elif (tomb or {}).get("file") != segment.tomb_file:
                store.verify_segment(record)
                deleted = store.read_segment(record)["deleted"]
                segment.set_deleted(deleted, tomb)
            segments.append(segment)
        self._segments = segments
        self._manifest = manifest
        self._rebuild_ids()

    def _rebuild_ids(self) -> None:
        ids: list[DocumentId] = []
        seg_of, row_of = [], []
        for s, segment in enumerate(self._segments):
            rows = segment.live_rows()
            if segment.live is None:
                ids.extend(segment.ids)
            else:
                ids.extend(segment.ids[r] for r in rows.tolist())
            seg_of.append(np.full(len(rows), s, dtype=np.int32))
            row_of.append(rows)
        try:
            self._ids = DocumentIdMap.from_stored(ids)
        except (TypeError, ValueError) as error:
            raise IndexFormatError(
                f"{self._store.manifest_path}: segments disagree on ids ({error})."
            ) from None
        self._seg_of = np.concatenate(seg_of) if seg_of else np.empty(0, np.int32)
        self._row_of = np.concatenate(row_of) if row_of else np.empty(0, np.int64)

    # -- transactions ------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, action: str) -> Iterator[Transaction]:
        """Lock, reload to the latest commit, stage, commit, reload, collect."""
        store = self._store
        store.path.mkdir(parents=True, exist_ok=True)
        with write_lock(store.path, self.lock_timeout):
            self._sync()
            txn = Transaction(store, self._manifest)
            try:
                yield txn
                if txn.dirty():
                    store.commit(txn.manifest(), self._manifest)
            except BaseException as error:
                txn.discard()
                self._manifest = None  # forget state staged in memory
                with contextlib.suppress(Exception):
                    self._sync(force=True)
                if isinstance(error, OSError):
                    raise describe_os_error(error, action) from error
                raise
            self._sync(force=False)
            with contextlib.suppress(OSError):
                store.collect_garbage(self._manifest)

    def _locate(self, ids: list[DocumentId]) -> dict[int, np.ndarray]:
        """Rows of live ``ids`` grouped by segment number."""
        positions = np.asarray(self._ids.positions(ids), dtype=np.int64)
        if not len(positions):
            return {}
        segs, rows = self._seg_of[positions], self._row_of[positions]
        return {int(s): rows[segs == s] for s in np.unique(segs)}

    def _tombstone(self, txn: Transaction, ids: list[DocumentId]) -> None:
        for s, rows in self._locate(ids).items():
            segment = self._segments[s]
            txn.delete_rows(segment.name, rows, segment.deleted)

    # -- writes ------------------------------------------------------------------

    def _write_segment(
        self,
        txn: Transaction,
        batches: Iterable[tuple[Any, Any]],
        replace: bool = True,
        validate: bool = True,
    ) -> list[DocumentId]:
        """Stream ``batches`` into one new segment; returns the ids written.

        Each batch is validated, appended to the segment's ``tokens.npy`` on
        disk and handed to the kind (``_on_batch``), then dropped, so memory
        stays bounded by one batch whatever the collection size. A batch may
        carry a third item, its records (:func:`.documents.check_records`),
        written to the segment's documents file.
        """
        store = self._store
        staging = store.staging_folder()
        txn.track(staging)
        writer = texts = None
        offsets = [np.zeros(1, dtype=np.int64)]
        written: list[DocumentId] = []
        seen: set = set()
        state = self._begin_segment(staging)
        total = 0
        bar = tqdm.tqdm(
            desc="Adding documents to the index",
            unit="doc",
            disable=not self.show_progress,
        )
        try:
            for number, batch in enumerate(batches):
                if not isinstance(batch, tuple) or len(batch) not in (2, 3):
                    raise TypeError(
                        f"batch {number} of documents_ids must be an (ids, "
                        f"embeddings) pair, got {type(batch).__name__}."
                    )
                if validate:
                    ids, matrices = check_documents(
                        batch[0], batch[1], self._dim, finite=False
                    )
                else:
                    ids, matrices = batch[:2]
                records = batch[2] if len(batch) == 3 else None
                if records is not None:
                    texts = texts or DocumentsWriter(staging)
                    texts.append(len(written), records)
                again = [i for i in ids if i in seen]
                if again:
                    raise ValueError(
                        f"batch {number} repeats ids of an earlier batch: "
                        f"{describe_ids(again)}."
                    )
                seen.update(ids)
                # A large batch (a whole collection given as one list) is
                # written in slices, so no full-size copy is ever made.
                for first in range(0, len(matrices), _SLICE_DOCS):
                    part = matrices[first : first + _SLICE_DOCS]
                    block = np.concatenate([to_float32_numpy(m) for m in part])
                    if validate and not np.isfinite(block).all():
                        # One vectorised check per slice; locate the culprit
                        # only when it fails.
                        check_finite(part, "documents_embeddings", ids[first:], first)
                    if writer is None:
                        self._dim = int(block.shape[1])
                        txn.params = {**txn.params, **self._params()}
                        writer = npy_stream.NpyAppender(
                            staging / TOKENS, self.storage_dtype, (self._dim,)
                        )
                    lengths = np.asarray([len(m) for m in part], dtype=np.int64)
                    self._on_batch(state, block, total, lengths)
                    writer.append(block)
                    offsets.append(total + np.cumsum(lengths))
                    total += int(lengths.sum())
                written.extend(ids)
                bar.update(len(ids))
                crash_point("batch_written")
            if writer is None:
                raise ValueError("documents_ids is empty: nothing to add.")
            writer.close()
            if texts is not None:
                texts.close()
                crash_point("documents_written")
        except BaseException:
            for open_writer in (writer, texts):
                if open_writer is not None:
                    open_writer.abort()
            raise
        finally:
            bar.close()
        offsets_array = np.concatenate(offsets)
        npy_stream.save(staging / OFFSETS, offsets_array)
        self._finish_segment(state, staging, txn, offsets_array)
        if replace:
            self._tombstone(txn, [i for i in written if i in self._ids])
        record = store.seal_segment(staging, written, total)
        txn.created.remove(staging)
        txn.add_segment(record)
        return written

    def add_documents(
        self,
        documents_ids: Any,
        documents_embeddings: Any = None,
        batch_size: int = 2000,
        documents: list[str | None] | None = None,
        metadata: list[dict | None] | None = None,
    ) -> SegmentedIndex:
        """Add documents in one atomic commit; an id already indexed is replaced.

        Parameters
        ----------
        documents_ids
            One id or a list of ``n`` ids (str or int) - or, with
            ``documents_embeddings`` left out, an iterable of ``(ids,
            embeddings)`` batches (e.g. a generator over ``model.encode``
            chunks), written one batch at a time so memory stays bounded.
        documents_embeddings
            ``n`` matrices ``(L_i, H)`` (list, 3-D array/tensor), or one
            ``(L, H)`` matrix for a single document.
        batch_size
            Accepted for PyLate compatibility (the write is streamed anyway).
        documents
            ``n`` texts (None where there is none), stored beside the vectors
            in the same commit: ``get_documents``, ``return_documents`` and
            keyword (hybrid) search read them.
        metadata
            ``n`` JSON-able dicts (or None), matched by ``filter``.

        Returns
        -------
        SegmentedIndex
            ``self``.
        """
        check_int("batch_size", batch_size)
        batches = self._batches(
            documents_ids, documents_embeddings, documents, metadata
        )
        with self._transaction("add_documents") as txn:
            self._write_segment(txn, batches)
        self._maybe_merge()
        return self

    def update_documents(
        self,
        documents_ids: Any,
        documents_embeddings: Any,
        documents: list[str | None] | None = None,
        metadata: list[dict | None] | None = None,
    ) -> SegmentedIndex:
        """Replace documents in one atomic commit; ids not yet indexed are added.

        ``documents`` / ``metadata`` as in :meth:`add_documents`; one left to
        None keeps what each document already stores (an update of the
        vectors alone keeps their texts and metadata).
        """
        batches = self._batches(
            documents_ids, documents_embeddings, documents, metadata
        )
        ids, embeddings, records = batches[0]
        with self._transaction("update_documents") as txn:
            kept = self._kept_records(normalize_ids(ids), records, documents, metadata)
            self._write_segment(txn, [(ids, embeddings, kept)])
        self._maybe_merge()
        return self

    def _batches(self, ids: Any, embeddings: Any, documents: Any, metadata: Any):
        if embeddings is None and (documents is not None or metadata is not None):
            raise ValueError(
                "documents and metadata need documents_embeddings: with an "
                "iterable of batches, give (ids, embeddings) batches only."
            )
        batches = as_batches(ids, embeddings)
        if embeddings is None:
            return batches
        records = check_records(documents, metadata, len(normalize_ids(ids)))
        return [(ids, embeddings, records)]

    def remove_documents(self, documents_ids: Any) -> SegmentedIndex:
        """Remove documents in one atomic commit (tombstones; no data is copied).

        Ids that are not indexed are skipped with a logged warning, as PyLate
        skips them.
        """
        self._sync()
        normalize_ids(documents_ids)
        with self._transaction("remove_documents") as txn:
            ids = self._known_for_removal(documents_ids)
            if ids:
                self._tombstone(txn, ids)
                crash_point("tombstones_written")
        self._maybe_merge()
        return self
