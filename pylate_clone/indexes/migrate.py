"""Convert a PyLate 1.6 index folder into a pylate_clone index, in place."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

from .base import Base
from .compat.pylate_folders import (
    describe_pylate_folder,
    pylate_folder_kind,
    read_plaid,
    read_voyager,
)
from .kinds import classes_for
from .plaid import PLAID
from .voyager import Voyager

__all__ = ["describe_pylate_folder", "migrate_pylate_index"]

logger = logging.getLogger(__name__)

BACKUP_SUFFIX = ".pylate-backup"
STAGING_MARK = ".migrating-"


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _finish_interrupted(path: Path, backup: Path) -> bool:
    """Complete a migration killed between its two renames; True if it did."""
    if path.exists() or not backup.is_dir():
        return False
    staged = sorted(path.parent.glob(f"{path.name}{STAGING_MARK}*"))
    complete = [s for s in staged if (s / "manifest.json").is_file()]
    if len(complete) != 1:
        return False
    os.rename(complete[0], path)
    _fsync_dir(path.parent)
    logger.warning("Finished the interrupted migration of %s.", path)
    return True


def _open(kind: str, path: Path, show_progress: bool) -> Base:
    cls = classes_for(kind)[0]
    return cls(
        index_folder=path.parent, index_name=path.name, show_progress=show_progress
    )


def migrate_pylate_index(
    folder: str | os.PathLike,
    trust_pickle: bool = False,
    show_progress: bool = True,
) -> Base:
    """Convert a PyLate 1.6 Voyager or PLAID folder into our format, in place.

    The documents are read from the PyLate folder, a new index is built beside
    it under a temporary name through the public index API, then two renames
    swap the folders: ``folder`` becomes the new index and the original is kept
    as ``folder.pylate-backup``. Until the first rename the original is
    untouched; a run killed between the renames is finished by running the
    migration again.

    * Voyager: the token vectors are read back from ``index.voyager`` (exact
      float32), with the HNSW parameters (``M``, ``ef_construction``) kept.
    * PLAID: fast-plaid's codec is decompressed (centroid + residual buckets,
      normalised: the vectors PyLate scores) and our PLAID is built from them.
      Our PLAID trains its own codec, so scores can differ from PyLate's by
      our codec's error (docs/differences_api.md).

    Parameters
    ----------
    folder
        The PyLate index folder, ``{index_folder}/{index_name}``.
    trust_pickle
        PyLate's id maps are pickles; they are read only when this is ``True``
        (and then only plain containers are accepted).
    show_progress
        Progress bars while rebuilding.

    Returns
    -------
    Base
        The migrated index, opened from ``folder``.

    Raises
    ------
    ValueError
        If ``trust_pickle`` is false, or ``folder`` is not a PyLate 1.6 index.
    FileExistsError
        If ``folder.pylate-backup`` already exists.
    """
    path = Path(folder).resolve()
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    if _finish_interrupted(path, backup):
        kind = "plaid" if (backup / "fast_plaid_index").is_dir() else "voyager"
        return _open(kind, path, show_progress)
    kind = pylate_folder_kind(path)
    if kind is None:
        raise ValueError(
            f"folder {str(path)!r} is not a PyLate 1.6 Voyager or PLAID index "
            "(expected index.voyager or fast_plaid_index/ beside PyLate's .pkl id maps)."
        )
    if not trust_pickle:
        raise ValueError(
            f"{path} stores its id maps as pickles; reading a pickle can run code "
            "from the file. Pass trust_pickle=True only if you trust this folder."
        )
    if backup.exists():
        raise FileExistsError(
            f"{backup} already exists: move it away before migrating {path} again."
        )
    reader = read_voyager if kind == "voyager" else read_plaid
    ids, matrices, params = reader(path, trust_pickle=True)
    staging_name = f"{path.name}{STAGING_MARK}{uuid.uuid4().hex[:8]}"
    staging = path.parent / staging_name
    try:
        if kind == "voyager":
            index: Base = Voyager(
                index_folder=path.parent,
                index_name=staging_name,
                override=True,
                embedding_size=params["embedding_size"],
                M=params["M"],
                ef_construction=params["ef_construction"],
                show_progress=show_progress,
            )
        else:
            index = PLAID(
                index_folder=path.parent,
                index_name=staging_name,
                override=True,
                show_progress=show_progress,
            )
        if ids:
            index.add_documents(ids, matrices)
        del index
        os.rename(path, backup)
        os.rename(staging, path)
        _fsync_dir(path.parent)
    except BaseException:
        if staging.exists() and path.exists():
            shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info(
        "Migrated %s (%d documents); the original is kept at %s.",
        path,
        len(ids),
        backup,
    )
    return _open(kind, path, show_progress)
