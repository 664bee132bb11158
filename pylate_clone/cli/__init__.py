"""The ``pylate-clone`` command line: index, search, evaluate, serve, migrate.

::

    pylate-clone index --model MODEL --corpus CORPUS --index FOLDER
    pylate-clone search --model MODEL --index FOLDER --queries QUERIES --output RUN
    pylate-clone evaluate --run RUN --qrels QRELS
    pylate-clone serve --model MODEL --index FOLDER
    pylate-clone migrate FOLDER/NAME --trust-pickle

Errors are one line on stderr with exit status 2 (``PYLATE_CLONE_DEBUG=1``
shows the traceback). ``--quiet`` hides the progress bars.
"""

from __future__ import annotations

import argparse
import sys

from ..server.main import OneLineParser, add_server_arguments, run_reporting_errors
from .commands import (
    DEFAULT_METRICS,
    run_evaluate,
    run_index,
    run_migrate,
    run_search,
)

__all__ = ["build_parser", "main"]


def _serve(args: argparse.Namespace) -> None:
    from ..server import serve

    serve(args)


def _add_index_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", required=True, help="index folder")
    parser.add_argument(
        "--index-name", default="colbert", help="index name (default colbert)"
    )


def _add_encoding(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder or id")
    parser.add_argument(
        "--batch-size", type=int, default=32, help="texts per forward pass"
    )
    parser.add_argument("--device", default=None, help="torch device (e.g. cuda)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pylate-clone`` and its sub-commands."""
    parser = OneLineParser(
        prog="pylate-clone",
        description="Index, search, evaluate and serve with ColBERT models.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_text,
            description=help_text,
            prog=f"pylate-clone {name}",
        )

    index = command("index", "Encode a corpus and add it to an index.")
    _add_encoding(index)
    index.add_argument("--corpus", required=True, help="corpus.jsonl or a BEIR folder")
    _add_index_location(index)
    index.add_argument(
        "--kind",
        metavar="{plaid,voyager,...}",
        default=None,
        help="kind of a new index (default plaid); an existing index keeps its own",
    )
    index.add_argument(
        "--ray",
        metavar="auto|ADDRESS|local",
        default=None,
        help="encode on a Ray cluster ('auto': the one running here, 'local': "
        "start one) (needs the ray extra)",
    )
    index.add_argument(
        "--workers", type=int, default=None, help="Ray: model replicas (default: all)"
    )
    index.add_argument(
        "--shards",
        type=int,
        default=None,
        help="Ray: write a sharded index of S shards (default 1)",
    )
    index.set_defaults(function=run_index)

    search = command("search", "Search an index and write a TREC run.")
    _add_encoding(search)
    _add_index_location(search)
    search.add_argument(
        "--queries", required=True, help="queries.jsonl or a BEIR folder"
    )
    search.add_argument("-k", type=int, default=10, help="results per query")
    search.add_argument("--output", required=True, help="TREC run file to write")
    search.add_argument(
        "--ray",
        metavar="auto|ADDRESS",
        default=None,
        help="a sharded index: the Ray cluster of its shard actors (default local)",
    )
    search.add_argument(
        "--filter",
        metavar="JSON",
        default=None,
        help='metadata filter, e.g. \'{"year": {"$gte": 2020}}\' (docs/documents.md)',
    )
    search.add_argument(
        "--hybrid",
        action="store_true",
        help="fuse ColBERT with BM25 over the stored texts",
    )
    search.add_argument(
        "--fusion",
        choices=("rrf", "relative"),
        default="rrf",
        help="hybrid fusion: reciprocal rank (default) or relative scores",
    )
    search.add_argument(
        "--alpha",
        type=float,
        default=0.5,
        help="relative fusion: weight of ColBERT in [0, 1] (default 0.5)",
    )
    search.set_defaults(function=run_search)

    evaluate = command("evaluate", "Score a TREC run against qrels.")
    evaluate.add_argument("--run", required=True, help="TREC run file")
    evaluate.add_argument(
        "--qrels", required=True, help="BEIR qrels .tsv or a BEIR folder"
    )
    evaluate.add_argument(
        "--metrics",
        nargs="+",
        default=None,
        help=f"ranx metric names (default {' '.join(DEFAULT_METRICS)})",
    )
    evaluate.set_defaults(function=run_evaluate)

    serve = command("serve", "Serve the model (and an index) over HTTP.")
    add_server_arguments(serve, host="127.0.0.1")
    serve.set_defaults(function=_serve)

    migrate = command(
        "migrate", "Convert an index folder written by PyLate 1.6, in place."
    )
    migrate.add_argument("folder", help="the index folder, FOLDER/NAME")
    migrate.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow reading PyLate's pickle files (they can run code)",
    )
    migrate.add_argument("--quiet", action="store_true", help="no progress bars")
    migrate.set_defaults(function=run_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``pylate-clone`` with ``argv`` (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 2 on a bad argument or failure.
    """
    args = build_parser().parse_args(argv)
    return run_reporting_errors(f"pylate-clone {args.command}", args.function, args)


def console_main() -> None:
    """Entry point of the ``pylate-clone`` console script."""
    sys.exit(main())
