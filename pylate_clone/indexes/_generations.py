"""Crash-safe, pickle-free on-disk layout shared by every index.

Layout of ``{index_folder}/{index_name}/``::

    manifest.json          the only mutable file: names the live generation
    gen-000003-<hex>/      the live generation (payload files + ids.json)
    .write.lock            advisory lock held by a writer

A write never touches the live generation. It builds the next generation in a
``tmp-<hex>`` folder, fsyncs every file, renames the folder to ``gen-…`` and then
commits by atomically replacing ``manifest.json`` (write to a temporary file,
fsync, ``os.replace``, fsync the folder). A process killed at any moment leaves
either the old manifest (old generation, complete) or the new one (new
generation, complete); leftover folders of an interrupted write are ignored by
readers and deleted by the next writer.

The manifest records the size (and, for small files, the SHA-256) of every file
of the generation, so a truncated or replaced file is reported by name instead
of failing deep inside a native library.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._idmap import DocumentIdMap

MANIFEST = "manifest.json"
IDS_FILE = "ids.json"
LOCK_FILE = ".write.lock"
FORMAT = "pylate_clone.index"
FORMAT_VERSION = 1
_HASH_LIMIT = 1 << 20  # files up to 1 MiB are also checksummed

# Test-only fault injection: when this variable names a crash point, the process
# SIGKILLs itself there. Used by tests/test_crash_safety.py, never set otherwise.
CRASH_ENV = "PYLATE_CLONE_TEST_CRASH_AT"


class IndexFormatError(ValueError):
    """An index folder holds a missing, truncated, foreign or inconsistent file."""


def crash_point(name: str) -> None:
    """Kill the current process with SIGKILL if the test hook names ``name``."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. directories on platforms that cannot open them
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (inclusive)."""
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync_path(Path(folder) / name)
        _fsync_path(Path(folder), directory=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename, fsync dir)."""
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:12]}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_path(path.parent, directory=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_files(root: Path) -> dict[str, dict[str, Any]]:
    """Size (and SHA-256 for small files) of every file under ``root``."""
    files: dict[str, dict[str, Any]] = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            size = path.stat().st_size
            entry: dict[str, Any] = {"size": size}
            if size <= _HASH_LIMIT:
                entry["sha256"] = _sha256(path)
            files[relative] = entry
    return dict(sorted(files.items()))


@contextlib.contextmanager
def _exclusive_lock(folder: Path) -> Iterator[None]:
    """Advisory inter-process write lock (no-op where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(folder / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


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
        ours = {LOCK_FILE}
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

    def verify(self, deep: bool = False) -> None:
        """Check every file of the live generation against the manifest.

        Sizes are always checked, checksums of small files too; ``deep`` is
        reserved for full checksums and currently equivalent.

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
            path = root / relative
            if not path.is_file():
                raise IndexFormatError(f"{path} is missing from the index.")
            size = path.stat().st_size
            if size != entry.get("size"):
                raise IndexFormatError(
                    f"{path} is truncated or was replaced: {size} bytes on disk, "
                    f"{entry.get('size')} recorded in {MANIFEST}."
                )
            if "sha256" in entry and _sha256(path) != entry["sha256"]:
                raise IndexFormatError(
                    f"{path} was altered: its checksum differs from {MANIFEST}."
                )

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
    def write(self) -> Iterator[Path]:
        """Context manager yielding a fresh staging folder for the next generation.

        Fill the folder, then call :meth:`commit` inside the block. If the block
        raises, the staging folder is removed and the live index is untouched.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        with _exclusive_lock(self.path):
            if self._manifest is not None and self.exists():
                on_disk = json.loads(self.manifest_path.read_bytes().decode("utf-8"))
                if on_disk.get("directory") != self._manifest["directory"]:
                    raise RuntimeError(
                        f"{self.path} was modified by another writer since it was "
                        "opened; open the index again before writing."
                    )
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
        extra: dict[str, Any] | None = None,
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
        extra
            Additional JSON fields for the manifest.

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
            "num_documents": len(ids),
            "params": params,
            **(extra or {}),
            "files": describe_files(staging),
        }
        target = self.path / name
        os.replace(staging, target)
        _fsync_path(self.path, directory=True)
        crash_point("generation_renamed")
        atomic_write_bytes(
            self.manifest_path, json.dumps(manifest, indent=1).encode("utf-8")
        )
        self._manifest = manifest
        crash_point("manifest_replaced")
        self.collect_garbage()
        return target

    def collect_garbage(self) -> None:
        """Delete every generation and staging leftover except the live one."""
        live = self._manifest["directory"] if self._manifest else None
        for entry in self.path.iterdir():
            name = entry.name
            stale = (
                (name.startswith("gen-") and name != live)
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
