"""Start the HTTP server: flags, model and index loading, uvicorn.

Shared by ``pylate-clone serve`` and ``python -m pylate_clone.server`` (whose
flags and defaults follow PyLate 1.6's ``server.py``: ``--host 0.0.0.0``,
``--port 8002``, ``--model lightonai/GTE-ModernColBERT-v1``).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from typing import Any

from ..resources import load_model, open_index
from .constants import API_KEY_ENV, DEFAULT_MAX_BATCH


def add_server_arguments(
    parser: argparse.ArgumentParser,
    host: str = "127.0.0.1",
    model_default: str | None = None,
) -> None:
    """Add the server's flags to ``parser``.

    Parameters
    ----------
    parser
        The parser (or sub-parser) to extend.
    host
        Default of ``--host``.
    model_default
        Default of ``--model``; None makes ``--model`` required.
    """
    parser.add_argument(
        "--model",
        required=model_default is None,
        default=model_default,
        help="model folder or Hugging Face id to serve",
    )
    parser.add_argument("--host", default=host, help=f"address (default {host})")
    parser.add_argument(
        "--port", type=int, default=8002, help="port (default 8002; 0 picks one)"
    )
    parser.add_argument("--index", help="index folder to serve /v1/search over")
    parser.add_argument(
        "--index-name", default="colbert", help="index name (default colbert)"
    )
    parser.add_argument(
        "--kind",
        metavar="{plaid,voyager,...}",
        help="create an empty index of this kind when none exists at --index",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help=f"require 'Authorization: Bearer KEY' (or set {API_KEY_ENV})",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=DEFAULT_MAX_BATCH,
        help=f"most texts or ids per request (default {DEFAULT_MAX_BATCH})",
    )
    parser.add_argument(
        "--max-body-mb",
        type=float,
        default=2.0,
        help="largest request body in MiB (default 2)",
    )
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=5.0,
        help="how long a request waits for others to share a batch (default 5)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="texts per forward pass (default 32)",
    )
    parser.add_argument("--device", default=None, help="torch device (e.g. cuda)")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
    )


def _check_positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}.")


def _bind(host: str, port: int) -> socket.socket:
    """A bound TCP socket; a busy port or bad host is a clear ``OSError``."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
    except socket.gaierror as error:
        raise OSError(f"--host {host!r} cannot be resolved ({error})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return sock


def _exit_cleanly(signum: int, frame: Any) -> None:
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again
    # with the previous handler: this one turns it into a zero exit status.
    raise SystemExit(0)


def serve(args: argparse.Namespace) -> None:
    """Load the model (and index), bind the port and serve until SIGTERM/SIGINT.

    Parameters
    ----------
    args
        Parsed flags of :func:`add_server_arguments`.

    Raises
    ------
    ValueError, OSError, ImportError
        On a bad flag, a model or index that cannot be opened, a busy port, or
        a missing ``api`` extra; the message is one line for the user.
    """
    try:
        import uvicorn
    except ImportError:
        raise ImportError(
            "the server needs the 'api' extra: pip install 'pylate-clone[api]'"
        ) from None
    from .app import ServerConfig, create_app

    _check_positive("--max-batch", args.max_batch)
    _check_positive("--max-body-mb", args.max_body_mb)
    _check_positive("--batch-size", args.batch_size)
    if args.batch_wait_ms < 0:
        raise ValueError(f"--batch-wait-ms must be >= 0, got {args.batch_wait_ms}.")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}.")
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    index = None
    if args.index is not None:
        index = open_index(
            args.index,
            args.index_name,
            kind=args.kind,
            create=bool(args.kind),
            quiet=True,
        )
    elif args.kind is not None:
        raise ValueError("--kind needs --index.")
    model = load_model(args.model, device=args.device)
    config = ServerConfig(
        model_name=args.model,
        max_batch=args.max_batch,
        max_body_mb=args.max_body_mb,
        api_key=api_key,
        batch_wait_ms=args.batch_wait_ms,
        encode_batch_size=args.batch_size,
    )
    app = create_app(model, config, index=index)
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    documents = f", {len(index)} documents" if index is not None else ""
    print(
        f"pylate-clone: serving {args.model}{documents} on http://{host}:{port}"
        f"{' (API key required)' if api_key else ''}",
        file=sys.stderr,
        flush=True,
    )
    signal.signal(signal.SIGTERM, _exit_cleanly)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level=args.log_level, timeout_graceful_shutdown=30)
    )
    server.run(sockets=[sock])


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print ``PROG: error: MESSAGE`` and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def run_reporting_errors(prog: str, function: Any, *args: Any) -> int:
    """Call ``function(*args)``; turn any exception into one line and status 2.

    Set ``PYLATE_CLONE_DEBUG=1`` to get the traceback instead.

    Parameters
    ----------
    prog
        Prefix of the error line (e.g. ``"pylate-clone search"``).
    function
        The command to run.
    *args
        Its arguments.

    Returns
    -------
    int
        0 on success, 2 on error, 130 when interrupted.
    """
    try:
        function(*args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if os.environ.get("PYLATE_CLONE_DEBUG"):
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        if isinstance(error, KeyError):  # str(KeyError) adds quotes
            message = " ".join(str(error.args[0]).split()) if error.args else message
        if not isinstance(
            error, (ValueError, OSError, ImportError, KeyError, NotImplementedError)
        ):
            message = f"{type(error).__name__}: {message}"
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    return 0
