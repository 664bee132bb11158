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

from ._idmap import DocumentIdMap
from ._storage import (
    DEFAULT_LOCK_TIMEOUT,
    WRITE_LOCK,
    IndexFormatError,
    atomic_write_bytes,
    check_file,
    crash_point,
    describe_files,
    fsync_path,
    fsync_tree,
    readers_lock,
    try_collect_lock,
    write_lock,
)

MANIFEST = "manifest.json"
IDS_FILE = "ids.json"
FORMAT = "pylate_clone.index"
FORMAT_VERSION = 1


class IndexStore:
    """Generations of one index folder, committed through an atomic manifest.

    Parameters
    ----------
    path
        The index folder ``{index_folder}/{index_name}``.
    kind
        Index type recorded in the manifest (``"voyager"`` or ``"plaid"``); a
        folder written by another kind is refused.
    """

    def __init__(self, path: str | os.PathLike, kind: str) -> None:
        self.path = Path(path)
        self.kind = kind
        self.manifest_path = self.path / MANIFEST
        self._manifest: dict[str, Any] | None = None

    # -- reading ---------------------------------------------------------------

    def exists(self) -> bool:
        """Whether the folder holds a committed index (a manifest)."""
        return self.manifest_path.is_file()

    def check_not_foreign(self) -> None:
        """Refuse a non-empty folder without a manifest (e.g. a PyLate pickle index).

        Raises
        ------
        IndexFormatError
            Naming one of the foreign files.
        """
        if not self.path.is_dir() or self.exists():
            return
        ours = {WRITE_LOCK, ".readers.lock"}
        foreign = sorted(
            p.name
            for p in self.path.iterdir()
            if p.name not in ours
            and not p.name.startswith(("tmp-", "gen-", f"{MANIFEST}.tmp-"))
        )
        if foreign:
            raise IndexFormatError(
                f"{self.path / foreign[0]} is not part of a pylate_clone index "
                f"(the folder has no {MANIFEST}; found {len(foreign)} foreign "
                "file(s)). Pickle-based PyLate indexes are not loaded; rebuild the "
                "index, or pass override=True to replace this folder."
            )

    def read_manifest(self) -> dict[str, Any]:
        """Parse and validate ``manifest.json``."""
        try:
            raw = self.manifest_path.read_bytes()
            manifest = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise IndexFormatError(
                f"{self.manifest_path} is truncated or not valid JSON ({error})."
            ) from None
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
        root = self.current
        if not root.is_dir():
            raise IndexFormatError(
                f"{root} (named by {self.manifest_path}) is missing."
            )
        for relative, entry in self.manifest["files"].items():
            check_file(root / relative, entry, self.manifest_path)

    def load_ids(self) -> DocumentIdMap:
        """Read the document id mapping of the live generation."""
        path = self.current / IDS_FILE
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            raise IndexFormatError(f"{path} is missing from the index.") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise IndexFormatError(
                f"{path} is truncated or not valid JSON ({error})."
            ) from None
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
        with try_collect_lock(self.path) as free:
            if not free:
                return
            for entry in self.path.iterdir():
                name = entry.name
                stale = (
                    (name.startswith("gen-") and name not in keep)
                    or name.startswith("tmp-")
                    or name.startswith(f"{MANIFEST}.tmp-")
                )
                if not stale:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        entry.unlink()
                crash_point("garbage_collecting")


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class GenerationIndexMixin:
    """Opening logic of a format-1 index (``_store`` is an :class:`IndexStore`).

    The class using it provides ``override``, ``index_path``, ``_ids``,
    ``_create_empty()`` and ``_load_generation(folder, manifest)``.
    """

    _store: IndexStore
    _ids: DocumentIdMap
    override: bool
    index_path: str

    def _open(self) -> None:
        """Load the committed index, or create an empty one (override / missing)."""
        store = self._store
        if self.override:
            self._wipe()
        else:
            store.check_not_foreign()
        if store.exists():
            self._reload()
        else:
            self._ids = DocumentIdMap()
            self._create_empty()

    def _reload(self) -> None:
        """Read the live generation named by the manifest."""
        store = self._store
        with readers_lock(store.path):
            stamp = _stamp(store.manifest_path)
            store.read_manifest()
            store.verify()
            self._ids = store.load_ids()
            self._load_generation(store.current, store.manifest)
        self._stamp = stamp

    def _sync(self) -> None:
        """Reload when another process committed since the last look (one stat)."""
        if _stamp(self._store.manifest_path) != getattr(self, "_stamp", None):
            self._reload()

    def _wipe(self) -> None:
        """Remove the content of the folder for ``override=True``."""
        path = Path(self.index_path)
        if not path.exists():
            return
        if self._store.exists():
            try:
                self._store.read_manifest()
            except IndexFormatError:
                pass
            else:
                # Committing an empty generation is atomic; garbage collection
                # then deletes the old generations.
                self._ids = DocumentIdMap()
                self._create_empty()
                return
        shutil.rmtree(path)

    def _create_empty(self) -> None:  # pragma: no cover - provided by the class
        raise NotImplementedError

    def _load_generation(self, folder: Path, manifest: dict[str, Any]) -> None:
        raise NotImplementedError  # pragma: no cover - provided by the class
