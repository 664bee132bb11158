"""Pickle-free storage of the object arrays fast-plaid keeps for small indexes.

fast-plaid saves ``embeddings.npy`` (raw embeddings of small collections, used to
rebuild them from scratch on update) and ``buffer.npy`` (documents awaiting
centroid expansion) as numpy *object* arrays, i.e. pickles. At rest, this
package stores them instead as a flat ``(sum L, H)`` array plus a lengths array,
loaded with ``allow_pickle=False``, and recreates fast-plaid's files only inside
a private working copy right before calling fast-plaid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PICKLED_FILES = ("embeddings.npy", "buffer.npy")


def _safe_names(name: str) -> tuple[str, str]:
    stem = name[: -len(".npy")]
    return f"{stem}.flat.npy", f"{stem}.lengths.npy"


def pack_folder(folder: Path) -> None:
    """Replace fast-plaid's object arrays in ``folder`` by flat + lengths arrays.

    Only called on files fast-plaid just wrote in this process, inside a
    private staging folder.
    """
    for name in PICKLED_FILES:
        path = folder / name
        if not path.exists():
            continue
        items = np.load(path, allow_pickle=True)
        matrices = [np.asarray(item) for item in items]
        lengths = np.asarray([len(m) for m in matrices], dtype=np.int64)
        if matrices:
            flat = np.ascontiguousarray(np.concatenate(matrices))
        else:
            flat = np.empty((0, 0), dtype=np.float16)
        flat_name, lengths_name = _safe_names(name)
        np.save(folder / flat_name, flat, allow_pickle=False)
        np.save(folder / lengths_name, lengths, allow_pickle=False)
        path.unlink()


def unpack_folder(folder: Path) -> None:
    """Recreate fast-plaid's object arrays from the pickle-free files in ``folder``."""
    for name in PICKLED_FILES:
        flat_name, lengths_name = _safe_names(name)
        flat_path, lengths_path = folder / flat_name, folder / lengths_name
        if not flat_path.exists():
            continue
        flat = np.load(flat_path, allow_pickle=False)
        lengths = np.load(lengths_path, allow_pickle=False)
        items = np.empty(len(lengths), dtype=object)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        for i in range(len(lengths)):
            items[i] = flat[offsets[i] : offsets[i + 1]]
        np.save(folder / name, items, allow_pickle=True)
        flat_path.unlink()
        lengths_path.unlink()
