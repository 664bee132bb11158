"""PyLate's ``pylate.server.server`` module path: the embeddings server script.

PyLate's ``server/server.py`` is a script (``python server.py --model M``)
that parses its flags and loads the model as soon as it is imported. This
module gives PyLate code the same path without those side effects: importing
it loads nothing; ``python -m pylate_clone.server.server`` (or :func:`main`,
also behind ``python -m pylate_clone.server``) parses PyLate's flags
(``--host`` 0.0.0.0, ``--port`` 8002, ``--model``
lightonai/GTE-ModernColBERT-v1, plus this server's own) and serves.
``EmbeddingRequest`` / ``EmbeddingResponse`` are the bodies of ``POST
/v1/embeddings`` with PyLate's fields (they need pydantic, from the ``api``
extra).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

from .constants import DEFAULT_MAX_BATCH, PYLATE_DEFAULT_MODEL
from .main import OneLineParser, add_server_arguments, run_reporting_errors, serve

_PROG = "python -m pylate_clone.server"


def _parser() -> OneLineParser:
    parser = OneLineParser(
        prog=_PROG,
        description="Serve a ColBERT model (and optionally an index) over HTTP.",
    )
    add_server_arguments(parser, host="0.0.0.0", model_default=PYLATE_DEFAULT_MODEL)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse PyLate's server flags (and this server's own).

    Parameters
    ----------
    argv
        The flags; None reads ``sys.argv[1:]``, as PyLate's script does.

    Returns
    -------
    argparse.Namespace
        ``host``, ``port`` and ``model`` as in PyLate, plus ``index``,
        ``api_key`` and the limits of ``pylate-clone serve``.
    """
    return _parser().parse_args(argv)


def wrap_encode_function(
    model: Any, **encode_kwargs: Any
) -> Callable[[list[str]], Any]:
    """A one-argument encoder: ``texts -> model.encode(texts, **encode_kwargs)``.

    ``encode_kwargs`` (e.g. ``is_query=True``) are passed on unchanged, so
    ``model.encode`` refuses a misspelt one when it is called.

    Parameters
    ----------
    model
        A loaded :class:`pylate_clone.models.ColBERT`.
    **encode_kwargs
        Keyword arguments of ``model.encode``.

    Returns
    -------
    Callable
        The encoder of one batch of texts.
    """

    def encode(sentences: list[str]) -> Any:
        return model.encode(sentences, **encode_kwargs)

    return encode


def main(argv: list[str] | None = None) -> int:
    """Parse the flags and serve until interrupted; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    return run_reporting_errors(parser.prog, serve, args)


@cache
def _embedding_request() -> Any:
    from .schemas import build_schemas

    return build_schemas(DEFAULT_MAX_BATCH).embedding


def __getattr__(name: str) -> Any:
    # pydantic is imported on first use, so this module imports without it.
    if name == "EmbeddingResponse":
        from .schemas import EmbeddingResponse

        return EmbeddingResponse
    if name == "EmbeddingRequest":
        return _embedding_request()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
