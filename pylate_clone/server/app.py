"""The FastAPI application: embeddings, search, rerank and document writes.

Concurrency model (one process, one model, at most one index):

* every text goes through one :class:`~.batcher.MicroBatcher`, so concurrent
  requests are encoded together on a single model thread;
* searches hold the read side of a :class:`~.rwlock.ReadWriteLock` and run in
  the default thread pool, so several proceed at once; adds and removals hold
  the write side, so a search sees the index before or after a write, never in
  between (the index commits each write atomically on disk as well);
* bad input is refused with a 4xx naming the field; the guard middleware
  answers 401/413 before the body is parsed.
"""

# No ``from __future__ import annotations``: FastAPI reads the request models
# from the route signatures at run time, and they are local to create_app.
import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .. import rank, retrieve
from ..indexes import IndexFormatError
from ..indexes.storage.filters import check_filter
from .batcher import MicroBatcher
from .guard import RequestGuard
from .rwlock import ReadWriteLock
from .schemas import (
    AddResponse,
    DocumentsResponse,
    EmbeddingResponse,
    HealthResponse,
    RemoveResponse,
    RerankResponse,
    SearchResponse,
    build_schemas,
)

T = TypeVar("T")


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one server.

    Parameters
    ----------
    model_name
        Name clients must send in ``/v1/embeddings``'s ``model`` (the
        ``--model`` value).
    max_batch
        Most texts (or ids) per request.
    max_body_mb
        Largest request body, in MiB.
    api_key
        Key required by every route but ``/health``; None disables it.
    batch_wait_ms
        How long a lone request waits for others to share its batch.
    encode_batch_size
        Texts per forward pass inside one encode call.
    """

    model_name: str
    max_batch: int = 256
    max_body_mb: float = 2.0
    api_key: str | None = None
    batch_wait_ms: float = 5.0
    encode_batch_size: int = 32


def _field_error(field: str, message: str, status: int = 422) -> HTTPException:
    """An HTTP error whose detail names the field, in FastAPI's list form."""
    return HTTPException(
        status_code=status,
        detail=[{"loc": ["body", field], "msg": message, "type": "value_error"}],
    )


async def _in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run ``function`` in the thread pool; if cancelled, wait for it to end.

    Waiting matters under the index lock: the lock must not be released while
    the thread still reads or writes the index.
    """
    future = asyncio.get_running_loop().run_in_executor(None, function, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await future
        raise


def _hits(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**hit, "id": hit["id"], "score": float(hit["score"])} for hit in results]


def create_app(model: Any, config: ServerConfig, index: Any = None) -> Any:
    """Build the ASGI application serving ``model`` (and ``index`` if given).

    Parameters
    ----------
    model
        A loaded :class:`pylate_clone.models.ColBERT`; it is only used from
        the batcher's worker thread.
    config
        Limits and names (see :class:`ServerConfig`).
    index
        An opened index for ``/v1/search`` and ``/v1/documents``; None serves
        embeddings and reranking only.

    Returns
    -------
    RequestGuard
        The FastAPI application wrapped in the key and body-size guard; the
        FastAPI object itself is its ``app`` attribute.
    """
    schemas = build_schemas(config.max_batch)
    lock = ReadWriteLock()

    def encode(texts: list[str], is_query: bool) -> list[Any]:
        return model.encode(
            texts,
            is_query=is_query,
            batch_size=config.encode_batch_size,
            show_progress_bar=False,
        )

    batcher = MicroBatcher(
        encode, max_texts=config.max_batch, wait_ms=config.batch_wait_ms
    )
    retriever = retrieve.ColBERT(index=index) if index is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(
        title="pylate_clone",
        summary="ColBERT embeddings, search and reranking over HTTP.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.index = index

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> Any:
        # FastAPI's own handler echoes the raw input back and fails (HTTP 500)
        # when the body is not UTF-8; bytes are decoded with replacement here.
        detail = jsonable_encoder(
            error.errors(),
            custom_encoder={bytes: lambda raw: raw.decode("utf-8", "replace")},
        )
        return JSONResponse(status_code=422, content={"detail": detail})

    def require_index() -> Any:
        if index is None:
            raise HTTPException(
                status_code=404,
                detail="this server has no index: start it with --index FOLDER",
            )
        return index

    @app.get("/health", response_model=HealthResponse)
    async def health() -> dict[str, Any]:
        documents = len(index) if index is not None else None
        return {"status": "ok", "model": config.model_name, "documents": documents}

    @app.post("/v1/embeddings", response_model=EmbeddingResponse)
    async def embeddings(
        request: schemas.embedding = Body(...),  # type: ignore[valid-type]
    ) -> JSONResponse:
        if request.model != config.model_name:
            raise _field_error(
                "model",
                f"model {request.model!r} is not served; this server serves "
                f"{config.model_name!r}",
                status=400,
            )
        texts = [request.input] if isinstance(request.input, str) else request.input
        vectors = await batcher.encode(texts, is_query=request.is_query)
        words = sum(len(text.split()) for text in texts)
        # A plain JSONResponse: validating millions of floats through the
        # response model would cost more than encoding them.
        return JSONResponse(
            {
                "data": [
                    {"object": "embedding", "embedding": vector.tolist(), "index": i}
                    for i, vector in enumerate(vectors)
                ],
                "model": request.model,
                "usage": {"prompt_tokens": words, "total_tokens": words},
            }
        )

    def search_options(request: Any, served: Any) -> dict[str, Any]:
        """The document-store options of a search, checked before encoding."""
        options: dict[str, Any] = {}
        wanted = {
            "filter": request.filter is not None,
            "hybrid": request.hybrid,
            "return_documents": request.return_documents,
        }
        for field, used in wanted.items():
            if used and not hasattr(served, "get_documents"):
                raise _field_error(
                    field,
                    f"this {type(served).__name__} index stores no documents or "
                    "metadata (PLAID, Voyager and Exact do)",
                )
        if request.filter is not None:
            try:
                check_filter(request.filter)
            except (TypeError, ValueError) as error:
                raise _field_error("filter", str(error)) from None
            options["filter"] = request.filter
        if request.hybrid:
            options.update(
                queries=list(request.queries),
                hybrid=True,
                fusion=request.fusion,
                alpha=request.alpha,
            )
        if request.return_documents:
            options["return_documents"] = True
        return options

    # Hits carry "document" / "metadata" only when asked (exclude_unset).
    @app.post(
        "/v1/search", response_model=SearchResponse, response_model_exclude_unset=True
    )
    async def search(
        request: schemas.search = Body(...),  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        served = require_index()
        options = search_options(request, served)
        queries = await batcher.encode(request.queries, is_query=True)
        async with lock.read():
            size = len(served)
            if size == 0:
                return {"results": [[] for _ in queries]}
            k = min(request.k, size)
            found = await _in_thread(
                functools.partial(retriever.retrieve, queries, k, **options)
            )
        return {"results": [_hits(ranking) for ranking in found]}

    @app.post("/v1/rerank", response_model=RerankResponse)
    async def rerank_route(
        request: schemas.rerank = Body(...),  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        ids = request.ids
        if ids is None:
            ids = list(range(len(request.documents)))
        elif len(ids) != len(request.documents):
            raise _field_error(
                "ids",
                f"{len(ids)} ids for {len(request.documents)} documents; "
                "give one id per document",
            )
        query, documents = await asyncio.gather(
            batcher.encode([request.query], is_query=True),
            batcher.encode(request.documents, is_query=False),
        )
        ranked = await _in_thread(rank.rerank, [ids], query, [documents])
        return {"results": _hits(ranked[0])}

    @app.post("/v1/documents", response_model=AddResponse)
    async def add_documents(
        request: schemas.add = Body(...),  # type: ignore[valid-type]
    ) -> dict[str, int]:
        served = require_index()
        if len(request.ids) != len(request.documents):
            raise _field_error(
                "ids",
                f"{len(request.ids)} ids for {len(request.documents)} documents; "
                "give one id per document",
            )
        if len(set(request.ids)) != len(request.ids):
            raise _field_error("ids", "ids must be unique within a request")
        stored: dict[str, Any] = {}
        if hasattr(served, "get_documents"):  # the kinds with a document store
            stored = {"documents": request.documents, "metadata": request.metadata}
        elif request.metadata is not None:
            raise _field_error(
                "metadata", f"this {type(served).__name__} index stores no metadata"
            )
        if request.metadata is not None and len(request.metadata) != len(request.ids):
            raise _field_error(
                "metadata",
                f"{len(request.metadata)} metadata for {len(request.ids)} ids; "
                "give one (or null) per document",
            )
        vectors = await batcher.encode(request.documents, is_query=False)
        async with lock.write():
            try:
                await _in_thread(
                    functools.partial(
                        served.add_documents, request.ids, vectors, **stored
                    )
                )
            except IndexFormatError:
                raise
            except ValueError as error:  # e.g. too few documents to train on
                raise _field_error("documents", str(error)) from None
            except TimeoutError as error:  # another process holds the write lock
                raise HTTPException(status_code=503, detail=str(error)) from None
            total = len(served)
        return {"added": len(request.ids), "documents": total}

    @app.post("/v1/documents/get", response_model=DocumentsResponse)
    async def get_documents(
        request: schemas.get = Body(...),  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        served = require_index()
        if not hasattr(served, "get_documents"):
            raise _field_error(
                "ids", f"this {type(served).__name__} index stores no documents"
            )
        async with lock.read():
            found = await _in_thread(served.get_documents, request.ids)
        return {"documents": found}

    @app.delete("/v1/documents", response_model=RemoveResponse)
    async def remove_documents(
        request: schemas.remove = Body(...),  # type: ignore[valid-type]
    ) -> dict[str, int]:
        served = require_index()
        async with lock.write():
            known = [doc for doc in dict.fromkeys(request.ids) if doc in served]
            if known:
                try:
                    await _in_thread(served.remove_documents, known)
                except TimeoutError as error:
                    raise HTTPException(status_code=503, detail=str(error)) from None
            total = len(served)
        return {"removed": len(known), "documents": total}

    return RequestGuard(
        app,
        max_body_bytes=int(config.max_body_mb * 1024 * 1024),
        api_key=config.api_key,
    )
