"""``python -m pylate_clone.server``: PyLate 1.6's ``server.py``, with its flags.

``--host`` (default 0.0.0.0), ``--port`` (8002) and ``--model``
(lightonai/GTE-ModernColBERT-v1) behave as in PyLate; the other flags of
``pylate-clone serve`` (``--index``, ``--api-key``, limits) are accepted too.
"""

from __future__ import annotations

import sys

from .constants import PYLATE_DEFAULT_MODEL
from .main import OneLineParser, add_server_arguments, run_reporting_errors, serve


def main(argv: list[str] | None = None) -> int:
    """Parse PyLate's server flags and serve; returns the exit status."""
    parser = OneLineParser(
        prog="python -m pylate_clone.server",
        description="Serve a ColBERT model (and optionally an index) over HTTP.",
    )
    add_server_arguments(parser, host="0.0.0.0", model_default=PYLATE_DEFAULT_MODEL)
    args = parser.parse_args(argv)
    return run_reporting_errors(parser.prog, serve, args)


if __name__ == "__main__":
    sys.exit(main())
