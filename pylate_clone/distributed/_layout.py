"""On-disk layout of a sharded index: one manifest naming per-shard sub-indexes.

A sharded index is a folder ``{index_folder}/{index_name}`` holding
``manifest.json`` of kind ``"sharded"`` and one ordinary index folder per shard
(a PLAID or Exact index in this package's own format)::

    {"kind": "sharded", "format": 1, "generation": 3, "routing": "crc32",
     "shard_kind": "plaid", "shards": ["g0003-s000", "g0003-s001"]}

The manifest is the commit point of a whole build: shard folders of a new
generation are written first, then the manifest is replaced atomically, then
the folders of the previous generation are deleted. A build that fails before
the swap leaves the previous manifest, hence the previous index, untouched.

A document belongs to shard ``crc32(str(id)) % shards``: stable across
processes and machines (Python's ``hash`` is salted per process).
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from pathlib import Path
from typing import Any

from .. import indexes

MANIFEST = "manifest.json"
KIND = "sharded"
FORMAT = 1

# Shard kinds a sharded index can hold -> the public class opening one. Only
# end-to-end indexes: a shard answers ranked documents that can be merged.
SHARD_CLASSES: dict[str, type] = {
    "plaid": indexes.PLAID,
    "exact": indexes.Exact,
}


class ShardedLayoutError(ValueError):
    """A sharded index folder is missing, damaged or not a sharded index."""


def shard_of(document_id: Any, shards: int) -> int:
    """Shard owning ``document_id`` among ``shards``.

    Parameters
    ----------
    document_id
        A document id (str or int; ``1`` and ``"1"`` share a shard).
    shards
        Number of shards, at least 1.

    Returns
    -------
    int
        ``crc32(str(id)) % shards``, in ``[0, shards)``.
    """
    key = str(indexes.normalize_id(document_id)).encode("utf-8")
    return zlib.crc32(key) % shards


def check_shard_kind(kind: str) -> type:
    """The index class of shard kind ``kind`` (``ValueError`` naming the choices)."""
    if kind not in SHARD_CLASSES:
        raise ValueError(
            f"kind must be one of {', '.join(sorted(SHARD_CLASSES))} for a sharded "
            f"index (shards answer ranked documents), got {kind!r}."
        )
    return SHARD_CLASSES[kind]


def manifest_path(index_folder: str | os.PathLike, index_name: str) -> Path:
    """Path of the manifest of the index ``{index_folder}/{index_name}``."""
    return Path(index_folder) / index_name / MANIFEST


def is_sharded(index_folder: str | os.PathLike, index_name: str) -> bool:
    """Whether ``{index_folder}/{index_name}`` holds a sharded index's manifest."""
    path = manifest_path(index_folder, index_name)
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def shard_kind(index_folder: str | os.PathLike, index_name: str) -> str | None:
    """Kind of the shards of the sharded index there; None if it is not one.

    Raises
    ------
    ShardedLayoutError
        If the folder is a sharded index whose manifest is damaged.
    """
    if not is_sharded(index_folder, index_name):
        return None
    return read_manifest(index_folder, index_name)["shard_kind"]


def read_manifest(index_folder: str | os.PathLike, index_name: str) -> dict[str, Any]:
    """The checked manifest of a sharded index.

    Raises
    ------
    ShardedLayoutError
        If there is no manifest, it is not JSON, not of kind ``"sharded"`` or
        names a shard folder that does not exist.
    """
    path = manifest_path(index_folder, index_name)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ShardedLayoutError(f"no sharded index at {path.parent}.") from None
    except (OSError, ValueError) as error:
        raise ShardedLayoutError(f"{path} cannot be read: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise ShardedLayoutError(f"{path} is not the manifest of a sharded index.")
    shards = manifest.get("shards")
    if (
        manifest.get("format") != FORMAT
        or manifest.get("shard_kind") not in SHARD_CLASSES
        or not isinstance(shards, list)
        or not shards
        or not all(isinstance(s, str) and "/" not in s for s in shards)
    ):
        raise ShardedLayoutError(f"{path}: unsupported or damaged sharded manifest.")
    for name in shards:
        if not (path.parent / name).is_dir():
            raise ShardedLayoutError(f"{path}: shard folder {name!r} is missing.")
    return manifest


def shard_names(generation: int, shards: int) -> list[str]:
    """Folder names of the ``shards`` shards of build ``generation``."""
    return [f"g{generation:04d}-s{i:03d}" for i in range(shards)]


def commit_manifest(
    index_folder: str | os.PathLike,
    index_name: str,
    generation: int,
    shard_kind: str,
    shards: list[str],
) -> dict[str, Any]:
    """Atomically make ``shards`` the live shards (write, fsync, rename).

    Returns
    -------
    dict
        The manifest written.
    """
    path = manifest_path(index_folder, index_name)
    manifest = {
        "kind": KIND,
        "format": FORMAT,
        "generation": int(generation),
        "routing": "crc32",
        "shard_kind": shard_kind,
        "shards": list(shards),
    }
    temporary = path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    # The rename is durable only once the folder entry is.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return manifest


def remove_unlisted(index_folder: str | os.PathLike, index_name: str) -> None:
    """Delete shard folders the live manifest does not name (older generations)."""
    root = Path(index_folder) / index_name
    live = set(read_manifest(index_folder, index_name)["shards"])
    for child in root.iterdir():
        if child.is_dir() and child.name.startswith("g") and child.name not in live:
            shutil.rmtree(child, ignore_errors=True)
