"""Format version 1: whole-index generations (used by :class:`indexes.FastPlaid`).

Layout of ``{index_folder}/{index_name}/``::

    manifest.json          the only mutable file: names the live generation
    gen-000003-<hex>/      the live generation (payload files + ids.json)
    .write.lock            advisory lock held by a writer

A write never touches the live generation. It builds the next generation in a
``tmp-<hex>`` folder, fsyncs every file, renames the folder to ``gen-…`` and then
commits by atomically replacing ``manifest.json``. A process killed at any
moment leaves either the old manifest (old generation, complete) or the new one;
leftover folders of an interrupted write are ignored by readers and deleted by
the next writer. The segment format (version 2, ``_segments``) replaced this for
the other kinds because every write here costs a copy of the whole index.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .commit import (
    DEFAULT_LOCK_TIMEOUT,
    MANIFEST,
    FolderStore,
    IndexFormatError,
    atomic_write_bytes,
    describe_files,
    fsync_path,
    fsync_tree,
    load_json,
    readers_lock,
    write_lock,
)
from .faults import crash_point
from .idmap import DocumentIdMap

IDS_FILE = "ids.json"
FORMAT = "pylate_clone.index"
FORMAT_VERSION = 1


class IndexStore(FolderStore):
    """Generations of one index folder, committed through an atomic manifest.

    Parameters
    ----------
    path
        The index folder ``{index_folder}/{index_name}``.
    kind
        Index type recorded in the manifest (``"scann"`` or ``"plaid"``); a
        folder written by another kind is refused.
    """

    foreign_advice = (
        "Pickle-based PyLate indexes are not loaded; rebuild the index, or pass "
        "override=True to replace this folder."
    )

    def __init__(self, path: str | os.PathLike, kind: str) -> None:
        super().__init__(path, kind)
        self._manifest: dict[str, Any] | None = None

    def _is_ours(self, name: str) -> bool:
        return name.startswith(("tmp-", "gen-", f"{MANIFEST}.tmp-"))

    # -- reading ---------------------------------------------------------------

    def read_manifest(self) -> dict[str, Any]:
        """Parse and validate ``manifest.json``."""
        manifest = load_json(self.manifest_path)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise IndexFormatError(
                f"{self.manifest_path} is not a pylate_clone index manifest."
            )
        if manifest.get("version") != FORMAT_VERSION:
            raise IndexFormatError(
                f"{self.manifest_path}: unsupported format version "
                f"{manifest.get('version')!r} (this code reads {FORMAT_VERSION})."
            )
        if manifest.get("kind") != self.kind:
            raise IndexFormatError(
                f"{self.manifest_path} describes a {manifest.get('kind')!r} index, "
                f"not a {self.kind!r} one."
            )
        directory = manifest.get("directory")
        files = manifest.get("files")
        if (
            not isinstance(directory, str)
            or "/" in directory
            or not directory.startswith("gen-")
            or not isinstance(files, dict)
            or not isinstance(manifest.get("params"), dict)
        ):
            raise IndexFormatError(f"{self.manifest_path} has malformed fields.")
        self._manifest = manifest
        return manifest

    @property
    def manifest(self) -> dict[str, Any]:
        """The last manifest read or written."""
        if self._manifest is None:
            return self.read_manifest()
        return self._manifest

    @property
    def current(self) -> Path:
        """Folder of the live generation."""
        return self.path / self.manifest["directory"]

    def verify(self) -> None:
        """Check every file of the live generation against the manifest.

        Raises
        ------
        IndexFormatError
            Naming the first missing, truncated or altered file.
        """
        self.verify_folder(self.current, self.manifest["files"])

    def load_ids(self) -> DocumentIdMap:
        """Read the document id mapping of the live generation."""
        path = self.current / IDS_FILE
        data = load_json(path)
        try:
            return DocumentIdMap.from_json(data, source=path)
        except ValueError as error:
            raise IndexFormatError(str(error)) from None

    # -- writing ---------------------------------------------------------------

    @contextlib.contextmanager
    def write(
        self,
        on_stale: Callable[[], None] | None = None,
        timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> Iterator[Path]:
        """Context manager yielding a fresh staging folder for the next generation.

        Waits up to ``timeout`` seconds for the write lock. If another process
        committed since this store last read the manifest, ``on_stale`` is
        called under the lock (the caller reloads) so its update is not lost.
        Fill the folder, then call :meth:`commit` inside the block. If the
        block raises, the staging folder is removed and the live index is
        untouched.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        with write_lock(self.path, timeout):
            if self._manifest is not None and self.exists():
                on_disk = json.loads(self.manifest_path.read_bytes().decode("utf-8"))
                if on_disk.get("directory") != self._manifest["directory"]:
                    if on_stale is None:
                        raise RuntimeError(
                            f"{self.path} was modified by another writer since "
                            "it was opened; open the index again before writing."
                        )
                    on_stale()
            staging = self.path / f"tmp-{uuid.uuid4().hex[:12]}"
            staging.mkdir()
            try:
                yield staging
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)

    def commit(
        self,
        staging: Path,
        ids: DocumentIdMap,
        params: dict[str, Any],
    ) -> Path:
        """Turn ``staging`` into the live generation atomically.

        Parameters
        ----------
        staging
            Folder from :meth:`write`, already holding the payload files.
        ids
            Document id mapping saved as ``ids.json`` in the generation.
        params
            Index parameters recorded in the manifest.

        Returns
        -------
        Path
            The new generation folder.
        """
        (staging / IDS_FILE).write_bytes(ids.dump())
        crash_point("staging_written")
        fsync_tree(staging)
        previous = self._manifest if self.exists() else None
        generation = (previous["generation"] + 1) if previous else 0
        name = f"gen-{generation:06d}-{uuid.uuid4().hex[:8]}"
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "kind": self.kind,
            "generation": generation,
            "directory": name,
            "previous": previous["directory"] if previous else None,
            "num_documents": len(ids),
            "params": params,
            "files": describe_files(staging),
        }
        target = self.path / name
        os.replace(staging, target)
        fsync_path(self.path, directory=True)
        crash_point("generation_renamed")
        atomic_write_bytes(
            self.manifest_path, json.dumps(manifest, indent=1).encode("utf-8")
        )
        self._manifest = manifest
        crash_point("manifest_replaced")
        self.collect_garbage()
        return target

    def collect_garbage(self) -> None:
        """Delete generations and staging leftovers except the last two committed.

        The previous generation is kept so that a reader that read the old
        manifest an instant before the commit can still open it; the
        deletion is skipped altogether while a reader holds the readers lock.
        """
        keep = set()
        if self._manifest:
            keep = {self._manifest["directory"], self._manifest.get("previous")}
        self.sweep(lambda name: self._is_ours(name) and name not in keep)


class GenerationIndexMixin:
    """Loading and reloading of a format-1 index (``_store`` is an :class:`IndexStore`).

    Supplies the hooks of :meth:`Base._open <pylate_clone.indexes.Base._open>`.
    The class using it provides ``_create_empty()`` (commit an empty
    generation) and ``_load_generation(folder, manifest)``.
    """

    _store: IndexStore
    _ids: DocumentIdMap

    def _load_committed(self) -> None:
        self._reload()

    def _start_empty(self) -> None:
        self._ids = DocumentIdMap()
        self._create_empty()

    def _reload(self) -> None:
        """Read the live generation named by the manifest."""
        store = self._store
        with readers_lock(store.path):
            stamp = store.stamp()
            store.read_manifest()
            store.verify()
            self._ids = store.load_ids()
            self._load_generation(store.current, store.manifest)
        self._stamp = stamp

    def _sync(self) -> None:
        """Reload when another process committed since the last look (one stat)."""
        if self._store.stamp() != getattr(self, "_stamp", None):
            self._reload()

    def _create_empty(self) -> None:  # pragma: no cover - provided by the class
        raise NotImplementedError

    def _load_generation(self, folder: Path, manifest: dict[str, Any]) -> None:
        raise NotImplementedError  # pragma: no cover - provided by the class
