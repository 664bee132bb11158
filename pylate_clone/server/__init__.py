"""HTTP service for ColBERT embeddings, search, reranking and index writes.

Needs the ``api`` extra (``pip install 'pylate-clone[api]'``: FastAPI and
uvicorn); importing this package does not import them, only
:func:`create_app` and :func:`serve` do.

Run it with ``pylate-clone serve --model MODEL [--index FOLDER]`` or, with
PyLate's flags, ``python -m pylate_clone.server --model MODEL``. Routes:
``GET /health``, ``POST /v1/embeddings`` (PyLate 1.6's JSON), ``POST
/v1/search``, ``POST /v1/rerank``, ``POST``/``DELETE /v1/documents``; see
``docs/serving.md``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def create_app(model: Any, config: Any, index: Any = None) -> Any:
    """Build the ASGI application (see :func:`pylate_clone.server.app.create_app`).

    Parameters
    ----------
    model
        A loaded :class:`pylate_clone.models.ColBERT`.
    config
        A :class:`pylate_clone.server.app.ServerConfig`.
    index
        An opened index, or None to serve embeddings and reranking only.

    Returns
    -------
    RequestGuard
        The application, ready for uvicorn or ``fastapi.testclient``.
    """
    from .app import create_app as build

    return build(model, config, index=index)


def serve(args: Any) -> None:
    """Run the server from parsed flags (see :func:`pylate_clone.server.main.serve`).

    Parameters
    ----------
    args
        An ``argparse.Namespace`` from
        :func:`pylate_clone.server.main.add_server_arguments`.
    """
    from .main import serve as run

    run(args)
