"""``build_index``: encode a corpus on a Ray cluster and write the index in one commit."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import indexes
from ..indexes.utils import check_int
from . import _layout
from ._cluster import cluster_cpus, cluster_gpus, connect
from ._corpus import corpus_dataset
from ._encoder import DocumentEncoder
from ._writer import write_sharded, write_single
from .sharded import ShardedIndex

# Kinds a single (unsharded) Ray build can write -> public index class.
SINGLE_CLASSES: dict[str, type] = {
    "plaid": indexes.PLAID,
    "exact": indexes.Exact,
    "voyager": indexes.Voyager,
}
_ROWS_PER_CALL = 4  # forward-pass batches per actor call (length sorting inside)


class BuildError(RuntimeError):
    """A Ray build failed; the index folder is at its last committed state."""


def _worker_plan(
    ray: Any, num_workers: int | None, device: str | None
) -> tuple[int, dict[str, Any], int]:
    """Pool size, each actor's Ray resources and its torch threads."""
    gpus = 0 if device == "cpu" else cluster_gpus(ray)
    cpus = cluster_cpus(ray)
    if num_workers is None:
        num_workers = gpus or cpus
    num_workers = check_int("num_workers", num_workers)
    if gpus:
        return num_workers, {"num_gpus": 1, "num_cpus": 1}, 1
    share = max(1, cpus // num_workers)
    return num_workers, {"num_cpus": share}, share


@contextlib.contextmanager
def _quiet_ordered_data(ray: Any, show_progress: bool) -> Iterator[None]:
    """Ray Data in input order (same index as a one-process build), bars optional."""
    context = ray.data.DataContext.get_current()
    saved = (context.execution_options.preserve_order, context.enable_progress_bars)
    logger = logging.getLogger("ray.data")
    level = logger.level
    context.execution_options.preserve_order = True
    context.enable_progress_bars = show_progress
    if not show_progress:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = saved
        logger.setLevel(level)


def _encoded_batches(
    ray: Any,
    dataset: Any,
    model: str,
    batch_size: int,
    device: str | None,
    num_workers: int | None,
) -> Iterator[tuple[list, list]]:
    """``(ids, matrices)`` pairs from an actor pool of model replicas, in order."""
    size, resources, threads = _worker_plan(ray, num_workers, device)
    encoded = dataset.map_batches(
        DocumentEncoder,
        fn_constructor_args=(model, batch_size, device, threads),
        batch_size=batch_size * _ROWS_PER_CALL,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=size),
        **resources,
    )
    # A Dataset snapshots the DataContext of the moment it was made (a corpus
    # dataset made before ``_quiet_ordered_data``, or the caller's own): order
    # is set on the context this dataset runs with, or Ray may reorder blocks.
    encoded.context.execution_options.preserve_order = True
    try:
        for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
            yield batch["_id"].tolist(), list(batch["embedding"])
    except ray.exceptions.RayError as error:
        cause = _user_error(ray, error)
        if cause is not None:
            # The encoding code's own exception (a bad document): its message
            # names the document.
            raise BuildError(f"a worker failed to encode a batch: {cause}") from error
        # A worker, node or object lost beyond Ray's retries.
        raise BuildError(
            f"the Ray build lost a worker or a task and could not finish: "
            f"{str(error).strip().splitlines()[0]}"
        ) from error


def _user_error(ray: Any, error: BaseException) -> str | None:
    """The worker's own error line behind a Ray error, None for a system failure.

    Ray Data reports an exception of the batch function as a ``RayTaskError``
    wrapping ``UserCodeException``; the original exception survives only as
    the text of the worker's traceback, whose ``Type: message`` line is kept.
    """
    if not isinstance(error, ray.exceptions.UserCodeException):
        return None
    text = str(error).split("The above exception was the direct cause")[0]
    lines = [
        line.strip()
        for line in text.splitlines()
        if re.match(r"^\s*[A-Za-z_][\w.]*(Error|Exception|Warning): ", line)
    ]
    return lines[-1] if lines else str(error).strip().splitlines()[-1]


def _model_reference(model_name_or_path: Any) -> str:
    """An absolute path for a local model folder (workers start elsewhere), else the id."""
    if isinstance(model_name_or_path, os.PathLike):
        model_name_or_path = os.fspath(model_name_or_path)
    if not isinstance(model_name_or_path, str) or not model_name_or_path.strip():
        raise ValueError(
            "model_name_or_path must name a model folder or a model id, got "
            f"{model_name_or_path!r}."
        )
    path = Path(model_name_or_path).expanduser()
    return str(path.resolve()) if path.is_dir() else model_name_or_path


def build_index(
    model_name_or_path: str | os.PathLike,
    corpus: Any,
    index_folder: str | os.PathLike,
    index_name: str = "colbert",
    kind: str = "plaid",
    *,
    ray_address: str | None = None,
    num_workers: int | None = None,
    batch_size: int = 32,
    device: str | None = None,
    shards: int = 1,
    **index_kwargs: Any,
) -> Any:
    """Encode ``corpus`` with a pool of Ray actors and index it.

    Ray Data reads the corpus; an actor pool of model replicas (one GPU per
    actor where the cluster has GPUs, CPU slots otherwise) encodes it; the
    driver streams the encoded batches, in corpus order, into one
    ``add_documents`` transaction per index (so a PLAID codebook is trained
    on the same seeded sample as in a one-process build of the same corpus).
    The driver holds a few batches at a time, never the collection.

    Parameters
    ----------
    model_name_or_path
        The ColBERT checkpoint each worker loads (a folder every node can
        read, or a hub id).
    corpus
        A BEIR folder, a ``corpus.jsonl`` path, a ``ray.data.Dataset`` with
        ``_id`` / ``text`` (optionally ``title``) columns, or an iterable of
        ``{"_id", "text", ...}`` dicts. A document's text is
        ``title + " " + text``, as the command line joins them.
    index_folder, index_name
        The index is written to ``{index_folder}/{index_name}``.
    kind
        ``"plaid"``, ``"exact"`` or (unsharded only) ``"voyager"``.
    ray_address
        None starts or joins a local Ray; ``"auto"`` or ``"ray://host:port"``
        joins a cluster.
    num_workers
        Model replicas; None: one per GPU, or one per CPU on a CPU cluster.
    batch_size
        Texts per forward pass.
    device
        Torch device of the workers; None: CUDA on GPU actors, else CPU.
    shards
        ``1`` writes one ordinary index; more write a sharded index (one
        sub-index per shard, documents split by ``crc32(id) % shards``) and
        return a :class:`ShardedIndex`.
    **index_kwargs
        Passed to the index class (``override``, ``seed``, ``show_progress``...).

    Returns
    -------
    indexes.Base or ShardedIndex
        The written index.

    Raises
    ------
    BuildError
        A worker or task was lost beyond Ray's retries; the folder is at its
        last committed state.
    """
    model = _model_reference(model_name_or_path)
    batch_size = check_int("batch_size", batch_size)
    shards = check_int("shards", shards)
    if not isinstance(kind, str) or kind not in SINGLE_CLASSES:
        raise ValueError(
            f"kind must be one of {', '.join(SINGLE_CLASSES)}, got {kind!r}."
        )
    cls = _layout.check_shard_kind(kind) if shards > 1 else SINGLE_CLASSES[kind]
    show_progress = bool(index_kwargs.get("show_progress", True))
    ray = connect(ray_address)
    with _quiet_ordered_data(ray, show_progress):
        dataset = corpus_dataset(ray, corpus)
        batches = _encoded_batches(ray, dataset, model, batch_size, device, num_workers)
        if shards == 1:
            index = cls(
                index_folder=index_folder, index_name=index_name, **index_kwargs
            )
            write_single(index, batches)
            return index
        _build_sharded(
            cls, kind, index_folder, index_name, shards, batches, index_kwargs
        )
    return ShardedIndex(index_folder, index_name, ray_address=ray_address)


def _build_sharded(
    cls: type,
    kind: str,
    index_folder: str | os.PathLike,
    index_name: str,
    shards: int,
    batches: Iterator[tuple[list, list]],
    index_kwargs: dict[str, Any],
) -> None:
    """Write a sharded index: new shard folders, then the manifest swap."""
    root = Path(index_folder) / index_name
    options = dict(index_kwargs)
    override = bool(options.pop("override", False))
    previous = None
    if (root / _layout.MANIFEST).is_file():
        if not _layout.is_sharded(index_folder, index_name):
            raise ValueError(
                f"{root} holds an unsharded index; write the sharded one under "
                "another index_name."
            )
        previous = _layout.read_manifest(index_folder, index_name)
        if previous["shard_kind"] != kind:
            raise ValueError(
                f"{root} is a sharded {previous['shard_kind']!r} index; kind "
                f"{kind!r} cannot change it."
            )
        if not override and len(previous["shards"]) != shards:
            raise ValueError(
                f"{root} has {len(previous['shards'])} shards; shards={shards} "
                "needs override=True (re-sharding rewrites every document)."
            )
    elif root.is_dir() and any(root.iterdir()):
        raise ValueError(f"{root} exists and is not an index; choose another folder.")
    if previous is not None and not override:
        # Adding to the live shards: each shard's write is one transaction.
        opened = [
            cls(index_folder=str(root), index_name=name, **options)
            for name in previous["shards"]
        ]
        write_sharded(opened, batches)
        return
    generation = 0 if previous is None else int(previous["generation"]) + 1
    names = _layout.shard_names(generation, shards)
    root.mkdir(parents=True, exist_ok=True)
    try:
        opened = [
            cls(index_folder=str(root), index_name=name, override=True, **options)
            for name in names
        ]
        write_sharded(opened, batches)
    except BaseException:
        # Nothing names these folders yet: the previous manifest stays live.
        for name in names:
            shutil.rmtree(root / name, ignore_errors=True)
        raise
    _layout.commit_manifest(index_folder, index_name, generation, kind, names)
    _layout.remove_unlisted(index_folder, index_name)
