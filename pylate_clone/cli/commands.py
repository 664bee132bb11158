"""The work of each ``pylate-clone`` sub-command (argument parsing is in ``main``)."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import time
import warnings
from pathlib import Path

from ..indexes.storage.filters import check_filter
from ..resources import index_kind, load_model, open_index
from .formats import (
    load_qrels,
    read_corpus,
    read_corpus_records,
    read_queries,
    read_run,
    write_run,
)

DEFAULT_METRICS = ("ndcg@10", "recall@100", "mrr@10")


def _encode(args: argparse.Namespace, texts: list[str], is_query: bool) -> list:
    """Load ``--model`` and encode ``texts`` with the command's batch size and bar."""
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}.")
    model = load_model(args.model, device=args.device, quiet=args.quiet)
    return model.encode(
        texts,
        is_query=is_query,
        batch_size=args.batch_size,
        show_progress_bar=not args.quiet,
    )


def _ray_address(value: str | None) -> str | None:
    """``--ray``: ``local`` (or absent) starts a local Ray, else an address."""
    return None if value in (None, "local") else value


def run_index(args: argparse.Namespace) -> None:
    """Encode a corpus and add it to an index (created when missing).

    Prints one line: documents added, seconds taken, documents in the index.
    With ``--ray``, ``--workers`` or ``--shards`` the encoding runs on Ray
    (:func:`pylate_clone.distributed.build_index`).
    """
    if args.ray is not None or args.workers is not None or args.shards is not None:
        run_index_on_ray(args)
        return
    ids, texts, metadata = read_corpus_records(args.corpus)
    # Open (or create) the index before the slow encoding, so that a wrong
    # --kind or a foreign folder fails at once.
    index = open_index(
        args.index, args.index_name, kind=args.kind, create=True, quiet=args.quiet
    )
    start = time.perf_counter()
    embeddings = _encode(args, texts, is_query=False)
    stored = {}
    if hasattr(index, "get_documents"):
        # The kinds with a document store keep the texts and other fields.
        stored = {"documents": texts, "metadata": metadata}
    index.add_documents(documents_ids=ids, documents_embeddings=embeddings, **stored)
    seconds = time.perf_counter() - start
    print(
        f"indexed {len(ids)} documents in {seconds:.1f} s "
        f"({Path(args.index) / args.index_name}: {len(index)} documents, "
        f"{index.kind})",
    )


def run_index_on_ray(args: argparse.Namespace) -> None:
    """``index`` on a Ray cluster: same folder format, optionally sharded."""
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}.")
    for flag, value in (("--workers", args.workers), ("--shards", args.shards)):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}.")
    read_corpus(args.corpus)  # the same checks (ids, JSON lines) as without Ray
    from .. import distributed

    shards = args.shards or 1
    existing = open_index_kind(args, shards)
    start = time.perf_counter()
    index = distributed.build_index(
        args.model,
        args.corpus,
        args.index,
        args.index_name,
        kind=existing or args.kind or "plaid",
        ray_address=_ray_address(args.ray),
        num_workers=args.workers,
        batch_size=args.batch_size,
        device=args.device,
        shards=shards,
        show_progress=not args.quiet,
    )
    seconds = time.perf_counter() - start
    kind = getattr(index, "shard_kind", index.kind)
    layout = f", {shards} shards" if shards > 1 else ""
    print(
        f"indexed {args.corpus} on Ray in {seconds:.1f} s "
        f"({Path(args.index) / args.index_name}: {len(index)} documents, "
        f"{kind}{layout})",
    )


def open_index_kind(args: argparse.Namespace, shards: int) -> str | None:
    """Kind of the index already at ``--index`` (None: none yet), checked early.

    A wrong ``--kind``, a sharded folder without ``--shards`` or a foreign
    folder fails before the slow encoding.
    """
    from .. import distributed

    path = Path(args.index) / args.index_name
    recorded = distributed.shard_kind(args.index, args.index_name)
    if recorded is not None and shards == 1:
        raise ValueError(
            f"{path} is a sharded index; pass --shards with its number of shards."
        )
    if recorded is None and shards == 1:
        recorded = index_kind(args.index, args.index_name)
    if recorded is not None and args.kind is not None and args.kind != recorded:
        raise ValueError(
            f"{path} is a {recorded!r} index; --kind {args.kind!r} cannot change it."
        )
    return recorded


def run_search(args: argparse.Namespace) -> None:
    """Search an index with queries and write a TREC run."""
    if args.k < 1:
        raise ValueError(f"-k must be at least 1, got {args.k}.")
    options = _search_options(args)
    queries_ids, texts = read_queries(args.queries)
    output = Path(args.output)
    if not output.parent.is_dir():
        raise FileNotFoundError(f"output folder {output.parent} does not exist.")
    index = open_index(
        args.index,
        args.index_name,
        quiet=args.quiet,
        ray_address=_ray_address(getattr(args, "ray", None)),
    )
    if len(index) == 0:
        raise ValueError(f"index {Path(args.index) / args.index_name} is empty.")
    start = time.perf_counter()
    embeddings = _encode(args, texts, is_query=True)
    from .. import retrieve

    if args.hybrid:
        options["queries"] = texts
    results = retrieve.ColBERT(index=index).retrieve(
        queries_embeddings=embeddings, k=min(args.k, len(index)), **options
    )
    lines = write_run(output, queries_ids, results)
    seconds = time.perf_counter() - start
    print(
        f"searched {len(queries_ids)} queries in {seconds:.1f} s; "
        f"wrote {lines} lines to {output}",
    )


def _search_options(args: argparse.Namespace) -> dict:
    """``--filter`` / ``--hybrid`` / ``--fusion`` / ``--alpha`` as retrieve's arguments."""
    options: dict = {}
    if args.filter is not None:
        try:
            options["filter"] = json.loads(args.filter)
        except json.JSONDecodeError as error:
            raise ValueError(f"--filter is not valid JSON ({error.msg}).") from None
        # Checked here, before the model loads and encodes.
        try:
            check_filter(options["filter"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"--filter: {error}") from None
    if args.hybrid:
        options.update(hybrid=True, fusion=args.fusion, alpha=args.alpha)
    elif args.fusion != "rrf" or args.alpha != 0.5:
        raise ValueError("--fusion and --alpha need --hybrid.")
    return options


def evaluate_run(
    rankings: dict[str, list[str]],
    qrels: dict[str, dict[str, int]],
    metrics: list[str],
) -> dict[str, float]:
    """Mean of each metric over the judged queries, computed by ranx.

    Parameters
    ----------
    rankings
        ``{query_id: [doc_id, ...]}`` best first (see ``formats.read_run``).
    qrels
        ``{query_id: {doc_id: grade}}``; grades are the nDCG gains (linear,
        log2 discount: trec_eval's ``ndcg``), grades <= 0 are not relevant.
    metrics
        ranx metric names, e.g. ``["ndcg@10", "recall@100", "mrr@10"]``.

    Returns
    -------
    dict[str, float]
        One mean value per metric, over the queries of the qrels that have a
        relevant document (grade > 0); such a query missing from the run
        scores 0, run queries without judgements are ignored. A document is
        never dropped for having the query's id.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from ranx import Qrels, Run, evaluate
    except ImportError:
        raise ImportError(
            "evaluate needs ranx: pip install 'pylate-clone[eval]'"
        ) from None
    # A query without any relevant document has no defined nDCG or recall:
    # it is left out of the mean (as BEIR does), not counted as 0.
    judged = {
        query_id: dict(grades)
        for query_id, grades in qrels.items()
        if any(grade > 0 for grade in grades.values())
    }
    # ranx ranks by score; scores from the ranking's positions make the
    # written order (ties included) the evaluated order.
    run = {
        query_id: {doc: float(len(docs) - rank) for rank, doc in enumerate(docs)}
        for query_id, docs in rankings.items()
        if query_id in judged
    }
    if not run:
        raise ValueError("no query of the run has a relevant document in the qrels.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = evaluate(
            Qrels.from_dict(judged),
            Run.from_dict(run),
            list(metrics),
            make_comparable=True,
        )
    if isinstance(scores, float) or not isinstance(scores, dict):
        scores = {metrics[0]: scores}
    return {metric: float(scores[metric]) for metric in metrics}


def run_evaluate(args: argparse.Namespace) -> None:
    """Print ``metric value`` lines (4 decimals) for a run against qrels."""
    metrics = list(args.metrics or DEFAULT_METRICS)
    rankings = read_run(args.run)
    qrels = load_qrels(args.qrels)
    try:
        values = evaluate_run(rankings, qrels, metrics)
    except KeyError as error:
        raise ValueError(f"unknown metric {error.args[0]!r}.") from None
    for metric in metrics:
        print(f"{metric} {values[metric]:.4f}")


def run_migrate(args: argparse.Namespace) -> None:
    """Convert a PyLate 1.6 index folder in place (needs ``--trust-pickle``)."""
    from .. import indexes

    migrate = getattr(indexes, "migrate_pylate_index", None)
    if migrate is None:
        raise NotImplementedError(
            "migrate is not available in this build yet "
            "(indexes.migrate_pylate_index is missing)."
        )
    folder = Path(args.folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"index folder {folder} does not exist.")
    if not args.trust_pickle:
        raise ValueError(
            "PyLate index folders hold pickle files, which can run code when read; "
            "pass --trust-pickle if you trust where this folder came from."
        )
    options = {"trust_pickle": True}
    if "show_progress" in inspect.signature(migrate).parameters:
        options["show_progress"] = not args.quiet
    start = time.perf_counter()
    index = migrate(os.fspath(folder), **options)
    seconds = time.perf_counter() - start
    try:
        detail = f" ({len(index)} documents, {index.kind})"
    except (TypeError, AttributeError):
        detail = ""
    print(
        f"migrated {folder}{detail} in {seconds:.1f} s; "
        f"the original is kept as {folder.name}.pylate-backup"
    )
