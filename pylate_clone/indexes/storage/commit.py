"""File-system primitives shared by every index layout: atomic writes, locks, commit point.

Nothing here knows about segments or generations. It is the one place where
index files are written (so that the test-only fault hook sees every write),
fsynced, atomically replaced and locked; :class:`FolderStore` is the part of
an index folder both layouts share (the manifest as commit point, the
foreign-folder check, file verification, the garbage sweep).

The test-only fault hook lives in :mod:`.faults`; :func:`open_for_write`
calls it before every file it creates.
"""

from __future__ import annotations

import contextlib
import errno as errno_module
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .faults import crash_point, maybe_fail

HASH_LIMIT = 1 << 20  # files up to 1 MiB are also checksummed
WRITE_LOCK = ".write.lock"
READERS_LOCK = ".readers.lock"
DEFAULT_LOCK_TIMEOUT = 60.0
MANIFEST = "manifest.json"


class IndexFormatError(ValueError):
    """An index folder holds a missing, truncated, foreign or inconsistent file."""


def open_for_write(path: Path) -> IO[bytes]:
    """Create ``path`` for writing (the one entry point the fault hook watches)."""
    maybe_fail(path)
    return open(path, "xb")


def describe_os_error(error: OSError, action: str) -> OSError:
    """Re-state an ``OSError`` as what failed, where, and that nothing changed."""
    name = errno_module.errorcode.get(error.errno or 0, "OSError")
    where = error.filename or "the index folder"
    return type(error)(
        error.errno,
        f"{action} failed writing {where}: {error.strerror or error} ({name}). "
        "The index was left at its previous committed state.",
        error.filename,
    )


def fsync_path(path: Path, directory: bool = False) -> None:
    """fsync a file or a folder (best effort on platforms that refuse folders)."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
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
            fsync_path(Path(folder) / name)
        fsync_path(Path(folder), directory=True)


def write_file(path: Path, data: bytes) -> None:
    """Write a new file and fsync it (not atomic by itself: used inside staging)."""
    with open_for_write(path) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename, fsync dir)."""
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        write_file(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_path(path.parent, directory=True)


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_file(path: Path) -> dict[str, Any]:
    """Size, and SHA-256 for files up to :data:`HASH_LIMIT`, of one file."""
    size = path.stat().st_size
    entry: dict[str, Any] = {"size": size}
    if size <= HASH_LIMIT:
        entry["sha256"] = sha256(path)
    return entry


def describe_files(root: Path) -> dict[str, dict[str, Any]]:
    """:func:`describe_file` of every file under ``root``, keyed by relative path."""
    files: dict[str, dict[str, Any]] = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            files[path.relative_to(root).as_posix()] = describe_file(path)
    return dict(sorted(files.items()))


def check_file(path: Path, entry: dict[str, Any], manifest: Path) -> None:
    """Raise :class:`IndexFormatError` if ``path`` differs from its manifest entry."""
    if not path.is_file():
        raise IndexFormatError(f"{path} is missing from the index.")
    size = path.stat().st_size
    if size != entry.get("size"):
        raise IndexFormatError(
            f"{path} is truncated or was replaced: {size} bytes on disk, "
            f"{entry.get('size')} recorded in {manifest.name}."
        )
    if "sha256" in entry and sha256(path) != entry["sha256"]:
        raise IndexFormatError(
            f"{path} was altered: its checksum differs from {manifest.name}."
        )


def _fcntl() -> Any:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        return None
    return fcntl


@contextlib.contextmanager
def write_lock(folder: Path, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
    """Exclusive inter-process writer lock, waited for up to ``timeout`` seconds.

    Raises
    ------
    TimeoutError
        If another writer still holds the lock after ``timeout`` seconds.
    """
    fcntl = _fcntl()
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(folder / WRITE_LOCK, "a+b") as handle:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"{folder} is being written by another process; gave up "
                        f"waiting for its write lock after {timeout:g} s (raise "
                        "lock_timeout to wait longer)."
                    ) from None
                time.sleep(delay)
                delay = min(0.1, delay * 2)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def readers_lock(folder: Path) -> Iterator[None]:
    """Shared lock held by a reader while it opens the files a manifest names.

    Garbage collection takes the same lock exclusively (see
    :func:`try_collect_lock`), so no file is deleted while a reader is between
    reading the manifest and mapping the files it names.
    """
    fcntl = _fcntl()
    path = folder / READERS_LOCK
    if fcntl is None or not folder.is_dir():
        yield
        return
    try:
        handle = open(path, "a+b")
    except OSError:  # read-only folder: readers cannot race a writer there
        yield
        return
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def try_collect_lock(folder: Path) -> Iterator[bool]:
    """Exclusive, non-blocking hold of the readers lock; yields whether it was got."""
    fcntl = _fcntl()
    if fcntl is None:  # pragma: no cover
        yield True
        return
    with open(folder / READERS_LOCK, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def load_json(path: Path) -> Any:
    """Parse a JSON file of an index; a missing or damaged one is an ``IndexFormatError``."""
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise IndexFormatError(f"{path} is missing from the index.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise IndexFormatError(
            f"{path} is truncated or not valid JSON ({error})."
        ) from None


class FolderStore:
    """What every index layout shares: a folder whose ``manifest.json`` is the commit.

    The layouts (``_generations``, ``_segments``) subclass it and say which
    names are theirs (:meth:`_is_ours`) and what to do with a folder that is
    not an index (:attr:`foreign_advice`).

    Parameters
    ----------
    path
        The index folder ``{index_folder}/{index_name}``.
    kind
        Index kind recorded in the manifest; a folder of another kind is refused.
    """

    foreign_advice = "Rebuild the index, or pass override=True to replace this folder."

    def __init__(self, path: str | os.PathLike, kind: str) -> None:
        self.path = Path(path)
        self.kind = kind
        self.manifest_path = self.path / MANIFEST

    def _is_ours(self, name: str) -> bool:
        """Whether ``name`` in the folder is a file or folder of this layout."""
        raise NotImplementedError  # pragma: no cover - provided by the layout

    def read_manifest(self) -> dict[str, Any]:
        """Parse and validate the manifest (``IndexFormatError`` if it is not valid)."""
        raise NotImplementedError  # pragma: no cover - provided by the layout

    def exists(self) -> bool:
        """Whether the folder holds a committed index (a manifest)."""
        return self.manifest_path.is_file()

    def stamp(self) -> tuple[int, int, int] | None:
        """Cheap change detector of the manifest (inode, mtime, size)."""
        try:
            st = os.stat(self.manifest_path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def check_not_foreign(self) -> None:
        """Refuse a non-empty folder without a manifest (e.g. a PyLate index).

        Raises
        ------
        IndexFormatError
            Naming one of the foreign files.
        """
        if not self.path.is_dir() or self.exists():
            return
        foreign = sorted(
            p.name
            for p in self.path.iterdir()
            if p.name not in (WRITE_LOCK, READERS_LOCK) and not self._is_ours(p.name)
        )
        if foreign:
            raise IndexFormatError(
                f"{self.path / foreign[0]} is not part of a pylate_clone index "
                f"(the folder has no {MANIFEST}; found {len(foreign)} foreign "
                f"file(s)). {self.foreign_advice}"
            )

    def verify_folder(self, folder: Path, files: dict[str, dict[str, Any]]) -> None:
        """Check the files of ``folder`` against their manifest records.

        Raises
        ------
        IndexFormatError
            Naming the folder if it is missing, else the first missing,
            truncated or altered file.
        """
        if not folder.is_dir():
            raise IndexFormatError(
                f"{folder} (named by {self.manifest_path}) is missing."
            )
        for relative, entry in files.items():
            check_file(folder / relative, entry, self.manifest_path)

    def sweep(self, stale: Callable[[str], bool]) -> int:
        """Delete the entries whose name is ``stale``; returns how many.

        Runs only while no reader holds the readers lock; otherwise the round
        is skipped (0 is returned; the next commit collects). Errors are
        ignored: what is left is retried by the next round.
        """
        removed = 0
        with try_collect_lock(self.path) as free:
            if not free:
                return 0
            for entry in self.path.iterdir():
                if not stale(entry.name):
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        entry.unlink()
                removed += 1
                crash_point("garbage_collecting")
        return removed
