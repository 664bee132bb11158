"""Request and response bodies of the HTTP API (pydantic models).

The request models are built per application by :func:`build_schemas`, because
the number of texts a request may carry (``--max-batch``) is a server setting;
with the limit in the schema, FastAPI reports every violation in one place and
in one form (HTTP 422, ``detail`` listing the field's location).

Types are strict where a silent conversion would hide a client bug: ``"5"`` is
not an ``int`` ``k``, ``1`` is not a text, ``"yes"`` is not a boolean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from .constants import PYLATE_DEFAULT_MODEL

#: Largest ``k`` a search may ask for (larger values are refused, not clamped).
MAX_K = 10_000

DocumentId = Union[StrictStr, StrictInt]


class EmbeddingResponse(BaseModel):
    """Answer of ``/v1/embeddings`` (PyLate 1.6's shape).

    ``data[i].embedding`` is the ``(n_tokens, dim)`` matrix of input ``i`` as
    nested lists; ``usage`` counts whitespace-separated words, PyLate's
    approximation of tokens.
    """

    data: list[dict[str, Any]]
    model: str
    usage: dict[str, int]


class Hit(BaseModel):
    """One ranked document."""

    id: DocumentId
    score: float


class DocumentHit(Hit):
    """One ranked document with its stored text and metadata (``return_documents``)."""

    document: str | None = None
    metadata: dict[str, Any] | None = None


class StoredDocument(BaseModel):
    """One document of ``POST /v1/documents/get`` (None where nothing is stored)."""

    id: DocumentId
    document: str | None
    metadata: dict[str, Any] | None


class DocumentsResponse(BaseModel):
    """Answer of ``POST /v1/documents/get``: one entry per requested id, in order."""

    documents: list[StoredDocument]


class SearchResponse(BaseModel):
    """Answer of ``/v1/search``: one ranked list per query, best first.

    Hits carry ``document`` and ``metadata`` when the request asked for
    ``return_documents``.
    """

    results: list[list[DocumentHit]]


class RerankResponse(BaseModel):
    """Answer of ``/v1/rerank``: the candidates, best first."""

    results: list[Hit]


class AddResponse(BaseModel):
    """Answer of ``POST /v1/documents``."""

    added: int
    documents: int


class RemoveResponse(BaseModel):
    """Answer of ``DELETE /v1/documents``."""

    removed: int
    documents: int


class HealthResponse(BaseModel):
    """Answer of ``/health``; ``documents`` is None when no index is served."""

    status: str
    model: str
    documents: int | None


@dataclass(frozen=True)
class Schemas:
    """The request models of one application (see :func:`build_schemas`)."""

    embedding: type[BaseModel]
    search: type[BaseModel]
    rerank: type[BaseModel]
    add: type[BaseModel]
    remove: type[BaseModel]
    get: type[BaseModel]


def build_schemas(max_batch: int) -> Schemas:
    """Request models whose lists hold between 1 and ``max_batch`` items.

    Parameters
    ----------
    max_batch
        Most texts (or ids) one request may carry.

    Returns
    -------
    Schemas
        The six request models.
    """
    Texts = Annotated[list[StrictStr], Field(min_length=1, max_length=max_batch)]
    Ids = Annotated[list[DocumentId], Field(min_length=1, max_length=max_batch)]
    forbid = ConfigDict(extra="forbid")

    class EmbeddingRequest(BaseModel):
        """PyLate 1.6's request: one text or a list, queries by default."""

        input: Union[StrictStr, Texts]
        is_query: StrictBool = True
        model: StrictStr = PYLATE_DEFAULT_MODEL

    class SearchRequest(BaseModel):
        model_config = forbid
        queries: Texts
        k: Annotated[StrictInt, Field(ge=1, le=MAX_K)] = 10
        # Checked (compiled) by the route, which names the offending part.
        filter: dict[str, Any] | None = None
        hybrid: StrictBool = False
        fusion: Literal["rrf", "relative"] = "rrf"
        alpha: Annotated[float, Field(ge=0, le=1, strict=True)] = 0.5
        return_documents: StrictBool = False

    class RerankRequest(BaseModel):
        model_config = forbid
        query: StrictStr
        documents: Texts
        ids: Ids | None = None

    class AddRequest(BaseModel):
        model_config = forbid
        ids: Ids
        documents: Texts
        metadata: (
            Annotated[
                list[dict[str, Any] | None], Field(min_length=1, max_length=max_batch)
            ]
            | None
        ) = None

    class GetRequest(BaseModel):
        model_config = forbid
        ids: Ids

    class RemoveRequest(BaseModel):
        model_config = forbid
        ids: Ids

    return Schemas(
        EmbeddingRequest,
        SearchRequest,
        RerankRequest,
        AddRequest,
        RemoveRequest,
        GetRequest,
    )
