"""Open the model and the index that a command line or a server flag names.

The command line (:mod:`pylate_clone.cli`) and the HTTP server
(:mod:`pylate_clone.server`) share these helpers so that ``pylate-clone index``,
``pylate-clone search`` and ``pylate-clone serve`` agree on two things:

* which index class reads a folder: the kind recorded in the folder's
  ``manifest.json``, never a flag the user might get wrong;
* the embeddings of a model whose projection is created at load time (a bare
  Hugging Face or sentence-transformers checkpoint): the projection is drawn
  from a fixed seed, so an index built by one process is searched with the same
  vectors by another.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
DEFAULT_KIND = "plaid"
MODEL_SEED = 0

# A folder of sub-indexes searched by Ray actors (pylate_clone.distributed):
# not in indexes.kinds, whose classes open in-process; opened through Ray.
SHARDED_KIND = "sharded"


class ResourceError(ValueError):
    """A model or index named by the user cannot be opened as asked."""


def available_kinds() -> list[str]:
    """Index kinds this build can create (``plaid``, ``voyager``, ...).

    Returns
    -------
    list[str]
        The kinds of :data:`pylate_clone.indexes.kinds.KIND_CLASSES`.
    """
    from .indexes import kinds

    return kinds.kind_names()


def index_kind(index_folder: str | os.PathLike, index_name: str) -> str | None:
    """Kind recorded in an index folder, or None when no index is there.

    Parameters
    ----------
    index_folder, index_name
        The index lives in ``{index_folder}/{index_name}``.

    Returns
    -------
    str or None
        ``"plaid"``, ``"voyager"``, ... ; None when the folder does not exist
        or is empty.

    Raises
    ------
    ResourceError
        If the folder holds files but no readable manifest (e.g. an index
        written by PyLate, which ``pylate-clone migrate`` converts).
    """
    path = Path(index_folder) / index_name
    manifest = path / MANIFEST
    if not manifest.is_file():
        if path.is_dir() and any(path.iterdir()):
            raise ResourceError(
                f"{path} is not a pylate_clone index (no {MANIFEST}); if PyLate 1.6 "
                f"wrote it, convert it with: pylate-clone migrate {path} --trust-pickle"
            )
        if path.exists() and not path.is_dir():
            raise ResourceError(f"{path} is a file, not an index folder.")
        return None
    from .indexes import kinds

    try:
        kind = kinds.recorded_kind(path)
    except (OSError, ValueError) as error:
        raise ResourceError(f"{manifest} cannot be read: {error}") from None
    if kind not in kinds.KIND_CLASSES and kind != SHARDED_KIND:
        raise ResourceError(f"{manifest} records an unknown index kind {kind!r}.")
    return kind


def _construct(cls: type, index_folder: str, index_name: str, quiet: bool) -> Any:
    kwargs: dict[str, Any] = {
        "index_folder": index_folder,
        "index_name": index_name,
        "override": False,
    }
    if "show_progress" in inspect.signature(cls).parameters:
        kwargs["show_progress"] = not quiet
    return cls(**kwargs)


def open_index(
    index_folder: str | os.PathLike,
    index_name: str,
    kind: str | None = None,
    create: bool = False,
    quiet: bool = False,
    ray_address: str | None = None,
) -> Any:
    """Open the index in ``{index_folder}/{index_name}`` with the class of its kind.

    Parameters
    ----------
    index_folder, index_name
        Where the index lives.
    kind
        Kind wanted by the caller. For an existing index it must match the
        recorded one (None accepts any); for a new index it picks the class
        (None means ``"plaid"``).
    create
        Create an empty index when none exists (else it is an error).
    quiet
        Hide the index's own progress bars.
    ray_address
        A sharded index only: the Ray cluster its shard actors run on (None:
        a local Ray, or the one ``RAY_ADDRESS`` names).

    Returns
    -------
    indexes.Base or distributed.ShardedIndex
        The opened index.

    Raises
    ------
    ResourceError
        If no index exists and ``create`` is False, if ``kind`` differs from
        the recorded kind or is unknown, or if the folder cannot be read.
    """
    from . import indexes
    from .indexes import kinds

    if kind is not None and kind not in available_kinds():
        raise ResourceError(
            f"--kind {kind!r} is not an index kind of this build; choose one of "
            f"{', '.join(available_kinds())}."
        )
    folder, name = str(index_folder), str(index_name)
    recorded = index_kind(folder, name)
    path = Path(folder) / name
    if recorded is None:
        if not create:
            raise ResourceError(
                f"no index at {path}; build one with 'pylate-clone index' (serve "
                "can start an empty one with --kind)."
            )
        cls = kinds.classes_for(kind or DEFAULT_KIND)[0]
        return _construct(cls, folder, name, quiet)
    if recorded == SHARDED_KIND:
        return _open_sharded(folder, name, kind, ray_address)
    if kind is not None and kind != recorded:
        raise ResourceError(
            f"{path} is a {recorded!r} index; --kind {kind!r} cannot change it."
        )
    first_error: Exception | None = None
    for cls in kinds.classes_for(recorded):
        try:
            return _construct(cls, folder, name, quiet)
        except indexes.IndexFormatError as error:
            first_error = first_error or error
    raise ResourceError(f"{path} cannot be opened: {first_error}")


def _open_sharded(
    folder: str, name: str, kind: str | None, ray_address: str | None
) -> Any:
    """A sharded index (its shard kind must match ``kind`` when one is asked)."""
    try:
        from .distributed.sharded import ShardedIndex
    except ImportError as error:
        raise ResourceError(
            f"{Path(folder) / name} is a sharded index: {error}"
        ) from None
    index = ShardedIndex(folder, name, ray_address=ray_address)
    if kind is not None and kind != index.shard_kind:
        index.close()
        raise ResourceError(
            f"{Path(folder) / name} is a sharded {index.shard_kind!r} index; "
            f"--kind {kind!r} cannot change it."
        )
    return index


def load_model(
    model_name_or_path: str | os.PathLike,
    device: str | None = None,
    quiet: bool = False,
) -> Any:
    """Load a ColBERT model; a projection created at load time is seeded.

    Parameters
    ----------
    model_name_or_path
        A local folder or a Hugging Face model id.
    device
        Torch device; None lets sentence-transformers choose.
    quiet
        Hide the weight-loading progress bar of transformers.

    Returns
    -------
    models.ColBERT
        The model, in evaluation mode.

    Raises
    ------
    ResourceError
        If the model cannot be loaded (missing folder, unknown id offline...).
    """
    import torch

    from . import models

    if quiet:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

    if isinstance(model_name_or_path, os.PathLike):
        model_name_or_path = os.fspath(model_name_or_path)
    if not isinstance(model_name_or_path, str) or not model_name_or_path.strip():
        raise ResourceError("--model must name a model folder or a model id.")
    path = Path(model_name_or_path).expanduser()
    if model_name_or_path.startswith((".", "/", "~")) and not path.is_dir():
        raise ResourceError(f"model folder {model_name_or_path} does not exist.")
    # The random projection of a checkpoint without one must be the same in
    # every process (index built by one command, searched by another).
    rng_state = torch.random.get_rng_state()
    torch.manual_seed(MODEL_SEED)
    try:
        model = models.ColBERT(model_name_or_path, device=device)
    except (OSError, ValueError, KeyError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error) else ""
        raise ResourceError(
            f"cannot load model {model_name_or_path!r}: "
            f"{first_line or type(error).__name__}"
        ) from None
    finally:
        torch.random.set_rng_state(rng_state)
    model.eval()
    return model
