"""Format version 3: immutable segments, tombstones and one atomic manifest.

Layout of ``{index_folder}/{index_name}/``::

    manifest.json              the only mutable file (replaced atomically)
    seg-<hex>/                 an immutable segment
        tokens.npy             (T, D) float16 token vectors, document after
                               document (Exact, Voyager, format-2 PLAID)
        offsets.npy            (N + 1,) int64 row offsets of the documents
        ids.json               the N user ids in row order (JSON keeps str/int)
        ...                    kind files (PLAID: centroid codes, packed
                               residuals instead of tokens.npy, IVF lists;
                               Voyager: HNSW)
    del-<segment>-<gen>.npy    int32 sorted deleted rows of one segment
    centroids-<hex>.npy        PLAID codebook shared by the segments
    codec-<hex>.npy            PLAID residual codec shared by the segments
    .write.lock / .readers.lock

A commit writes only new files (a segment folder staged as ``tmp-<hex>`` and
renamed, tombstone files, maybe a codebook), fsyncs them, then replaces
``manifest.json`` atomically. Nothing a manifest names is ever modified, so a
kill at any instant leaves the previous or the new manifest, both complete.
Files no longer named by the last two manifests are deleted by garbage
collection, which skips its round while a reader is opening files.

Version 3 adds the index-level ``codec`` entry and segments without
``tokens.npy`` (their vectors are the kind's codes). Version 2 folders are
read as they are; the next commit rewrites the manifest as version 3, which
names the same files.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import npy_stream
from .commit import (
    MANIFEST,
    FolderStore,
    IndexFormatError,
    atomic_write_bytes,
    check_file,
    describe_file,
    describe_files,
    fsync_path,
    fsync_tree,
    load_json,
    readers_lock,
    write_file,
)
from .faults import crash_point

FORMAT = "pylate_clone.index"
FORMAT_VERSION = 3
READABLE_VERSIONS = (2, 3)
TOKENS = "tokens.npy"
OFFSETS = "offsets.npy"
IDS = "ids.json"
_OURS = re.compile(
    r"^(seg-[0-9a-f]+|del-seg-[0-9a-f]+-\d+\.npy|(centroids|codec)-[0-9a-f]+\.npy)$"
)
_LEFTOVER = ("tmp-", f"{MANIFEST}.tmp-")


def _load_npy(path: Path, mmap: bool = False) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise IndexFormatError(f"{path} is missing from the index.") from None
    except Exception as error:  # noqa: BLE001 - numpy raises several kinds
        raise IndexFormatError(f"{path} could not be read ({error}).") from None


class SegmentStore(FolderStore):
    """The files of one segmented index folder (see :class:`FolderStore`)."""

    foreign_advice = (
        "PyLate index folders can be converted with indexes.migrate_pylate_index; "
        "otherwise rebuild the index, or pass override=True to replace this folder."
    )

    def __init__(
        self,
        path: str | os.PathLike,
        kind: str,
        retired_versions: Mapping[int, str] | None = None,
    ) -> None:
        super().__init__(path, kind)
        # Older format versions of this kind that this code no longer reads,
        # each with the advice its error gives (the kind knows, not the store).
        self.retired_versions = dict(retired_versions or {})

    def _is_ours(self, name: str) -> bool:
        return bool(_OURS.match(name)) or name.startswith(_LEFTOVER)

    # -- reading ---------------------------------------------------------------

    def read_manifest(self) -> dict[str, Any]:
        """Parse and validate ``manifest.json``.

        Raises
        ------
        IndexFormatError
            For a foreign, truncated or malformed manifest, another kind, or
            another format version (a retired version gives the kind's advice).
        """
        manifest = load_json(self.manifest_path)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise IndexFormatError(
                f"{self.manifest_path} is not a pylate_clone index manifest."
            )
        version = manifest.get("version")
        if manifest.get("kind") != self.kind:
            raise IndexFormatError(
                f"{self.manifest_path} describes a {manifest.get('kind')!r} index, "
                f"not a {self.kind!r} one."
            )
        if version in self.retired_versions:
            raise IndexFormatError(
                f"{self.manifest_path} {self.retired_versions[version]}"
            )
        if version not in READABLE_VERSIONS:
            raise IndexFormatError(
                f"{self.manifest_path}: unsupported format version {version!r} "
                f"(this code reads {' and '.join(map(str, READABLE_VERSIONS))})."
            )
        segments = manifest.get("segments")
        if (
            not isinstance(segments, list)
            or not isinstance(manifest.get("params"), dict)
            or not isinstance(manifest.get("generation"), int)
            or not all(
                isinstance(s, dict)
                and isinstance(s.get("name"), str)
                and _OURS.match(s["name"])
                and isinstance(s.get("files"), dict)
                for s in segments
            )
        ):
            raise IndexFormatError(f"{self.manifest_path} has malformed fields.")
        return manifest

    def verify_segment(self, record: dict[str, Any]) -> None:
        """Check a segment's files (and its tombstones) against the manifest."""
        self.verify_folder(self.path / record["name"], record["files"])
        tomb = record.get("tombstones")
        if tomb:
            check_file(self.path / tomb["file"], tomb, self.manifest_path)

    def read_segment(self, record: dict[str, Any]) -> dict[str, Any]:
        """Memory-map a verified segment: tokens, offsets, ids, deleted rows.

        ``tokens`` is None for a segment stored without ``tokens.npy`` (its
        kind reads its codes in ``_open_segment``).
        """
        folder = self.path / record["name"]
        tokens = None
        if TOKENS in record["files"]:
            tokens = _load_npy(folder / TOKENS, mmap=True)
        offsets = _load_npy(folder / OFFSETS)
        raw = load_json(folder / IDS)
        ids = raw.get("ids") if isinstance(raw, dict) else None
        count = len(tokens) if tokens is not None else record.get("num_tokens")
        if (
            (tokens is not None and tokens.ndim != 2)
            or offsets.ndim != 1
            or offsets.dtype != np.int64
            or not isinstance(ids, list)
            or len(offsets) != len(ids) + 1
            or (len(offsets) and (offsets[0] != 0 or offsets[-1] != count))
        ):
            raise IndexFormatError(
                f"{folder}: {TOKENS}, {OFFSETS} and {IDS} do not agree."
            )
        deleted = np.empty(0, dtype=np.int32)
        tomb = record.get("tombstones")
        if tomb:
            deleted = _load_npy(self.path / tomb["file"])
            if deleted.ndim != 1 or (len(deleted) and deleted.max() >= len(ids)):
                raise IndexFormatError(
                    f"{self.path / tomb['file']} names rows outside {folder}."
                )
        return {"tokens": tokens, "offsets": offsets, "ids": ids, "deleted": deleted}

    def read_array(self, entry: dict[str, Any]) -> np.ndarray:
        """Verify and load an index-level array file (e.g. the codebook)."""
        path = self.path / entry["file"]
        check_file(path, entry, self.manifest_path)
        return _load_npy(path)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the readers lock while a manifest's files are being opened."""
        with readers_lock(self.path):
            yield

    # -- writing ---------------------------------------------------------------

    def staging_folder(self) -> Path:
        """A new private folder for a segment being written."""
        folder = self.path / f"tmp-{uuid.uuid4().hex[:12]}"
        folder.mkdir()
        return folder

    def seal_segment(self, staging: Path, ids: list, num_tokens: int) -> dict[str, Any]:
        """Write ``ids.json``, fsync and rename a staged segment; its record."""
        payload = {"format": "pylate_clone.document_ids", "version": 1, "ids": ids}
        write_file(
            staging / IDS, json.dumps(payload, ensure_ascii=False).encode("utf-8")
        )
        fsync_tree(staging)
        crash_point("segment_written")
        name = f"seg-{uuid.uuid4().hex[:16]}"
        os.replace(staging, self.path / name)
        fsync_path(self.path, directory=True)
        return {
            "name": name,
            "num_docs": len(ids),
            "num_tokens": int(num_tokens),
            "files": describe_files(self.path / name),
            "tombstones": None,
        }

    def write_tombstones(
        self, segment: str, rows: np.ndarray, generation: int
    ) -> dict[str, Any]:
        """A new tombstone file holding every deleted row of ``segment``."""
        name = f"del-{segment}-{generation}.npy"
        path = self.path / name
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # leftover of an interrupted write of this generation
        npy_stream.save(path, np.unique(np.asarray(rows, dtype=np.int32)))
        return {"file": name, "count": int(len(np.unique(rows))), **describe_file(path)}

    def write_array(self, stem: str, array: np.ndarray) -> dict[str, Any]:
        """A new index-level array file ``<stem>-<hex>.npy`` and its record."""
        name = f"{stem}-{uuid.uuid4().hex[:16]}.npy"
        npy_stream.save(self.path / name, array)
        fsync_path(self.path, directory=True)
        return {"file": name, **describe_file(self.path / name)}

    def commit(self, manifest: dict[str, Any], previous: dict | None) -> None:
        """Atomically make ``manifest`` the live state."""
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "kind": self.kind,
            **manifest,
            "previous": sorted(self.referenced(previous)) if previous else [],
        }
        crash_point("before_manifest")
        atomic_write_bytes(
            self.manifest_path, json.dumps(manifest, indent=1).encode("utf-8")
        )
        crash_point("manifest_replaced")

    @staticmethod
    def referenced(manifest: dict[str, Any] | None) -> set[str]:
        """Names of the folders and files a manifest refers to."""
        if not manifest:
            return set()
        names = set()
        for record in manifest.get("segments", []):
            names.add(record["name"])
            if record.get("tombstones"):
                names.add(record["tombstones"]["file"])
        for key in ("codebook", "codec"):
            if manifest.get(key):
                names.add(manifest[key]["file"])
        return names

    def collect_garbage(self, manifest: dict[str, Any]) -> int:
        """Delete files of neither of the last two manifests; returns the count.

        Runs only while no reader holds the readers lock; otherwise the round
        is skipped (the next commit collects).
        """
        keep = self.referenced(manifest) | set(manifest.get("previous", []))
        return self.sweep(lambda name: name not in keep and self._is_ours(name))


class OpenSegment:
    """One opened segment: its manifest record, arrays and kind extras."""

    def __init__(self, record: dict[str, Any], arrays: dict[str, Any]) -> None:
        self.record = record
        self.name: str = record["name"]
        # None for a segment stored as codes; its kind sets `decoder`.
        self.tokens: np.ndarray | None = arrays["tokens"]
        self.offsets: np.ndarray = arrays["offsets"]
        self.ids: list = arrays["ids"]
        self.extra: dict[str, Any] = {}
        self.decoder: Callable[[int, int], np.ndarray] | None = None
        self.set_deleted(arrays["deleted"], record.get("tombstones"))

    def set_deleted(self, deleted: np.ndarray, tomb: dict | None) -> None:
        self.tomb_file = tomb["file"] if tomb else None
        self.deleted = np.asarray(deleted, dtype=np.int64)
        self.live: np.ndarray | None = None
        if len(self.deleted):
            self.live = np.ones(len(self.ids), dtype=bool)
            self.live[self.deleted] = False

    def live_rows(self) -> np.ndarray:
        rows = np.arange(len(self.ids), dtype=np.int64)
        return rows if self.live is None else rows[self.live]

    @property
    def num_tokens(self) -> int:
        return int(self.offsets[-1])

    def matrix(self, row: int) -> np.ndarray:
        """Float32 vectors of one document: stored, or decoded from its codes."""
        start, end = int(self.offsets[row]), int(self.offsets[row + 1])
        if self.tokens is None:
            return self.decoder(start, end)
        return np.asarray(self.tokens[start:end], dtype=np.float32)


class Transaction:
    """Changes staged against one base manifest, committed all at once."""

    def __init__(self, store: SegmentStore, base: dict[str, Any]) -> None:
        self.store = store
        self.base = base
        self.generation = base["generation"] + 1
        self.segments = copy.deepcopy(base["segments"])
        self.codebook = base.get("codebook")
        self.codec = base.get("codec")
        self.params = dict(base["params"])
        self.created: list[Path] = []
        self.retrain = False

    def track(self, path: Path) -> None:
        self.created.append(path)

    def add_segment(self, record: dict[str, Any]) -> None:
        self.segments.append(record)
        self.track(self.store.path / record["name"])

    def drop_segments(self, names: set[str]) -> None:
        self.segments = [s for s in self.segments if s["name"] not in names]

    def delete_rows(self, name: str, rows: np.ndarray, already: np.ndarray) -> None:
        record = next(s for s in self.segments if s["name"] == name)
        merged = np.union1d(already, rows)
        if record.get("tombstones") and record["tombstones"]["count"] == len(merged):
            return
        entry = self.store.write_tombstones(name, merged, self.generation)
        self.track(self.store.path / entry["file"])
        record["tombstones"] = entry

    def set_codebook(self, array: np.ndarray) -> dict[str, Any]:
        entry = self.store.write_array("centroids", array)
        self.track(self.store.path / entry["file"])
        self.codebook = entry
        return entry

    def set_codec(self, array: np.ndarray) -> dict[str, Any]:
        entry = self.store.write_array("codec", array)
        self.track(self.store.path / entry["file"])
        self.codec = entry
        return entry

    def dirty(self) -> bool:
        return (
            bool(self.created)
            or self.segments != self.base["segments"]
            or self.codebook != self.base.get("codebook")
            or self.codec != self.base.get("codec")
        )

    def manifest(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "params": self.params,
            "codebook": self.codebook,
            "codec": self.codec,
            "num_documents": sum(
                s["num_docs"] - (s["tombstones"] or {}).get("count", 0)
                for s in self.segments
            ),
            "segments": self.segments,
        }

    def discard(self) -> None:
        for path in self.created:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
