"""Shared retrieval loop: end-to-end indexes pass through, token-level ones rerank."""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import tqdm

from ..indexes import normalize_id
from ..indexes.base import Base
from ..indexes.storage.filters import check_filter
from ..indexes.utils import as_matrices, check_int, check_k, per_query_subsets
from ..rank import RerankResult
from ..utils.iter_batch import iter_batch
from .fusion import check_fusion, fuse

logger = logging.getLogger(__name__)

#: Candidates taken from each list (ColBERT, BM25) before a hybrid fusion.
HYBRID_DEPTH = 100
#: Most neighbours per query token once ``k_token`` is widened for a filter.
MAX_K_TOKEN = 2000


@dataclass(frozen=True)
class HitBatch:
    """A batch of queries and what a token-level index returned for them.

    One object rather than positional arguments, so the scoring hook's
    signature is written once for every retriever.
    """

    queries: list[Any]  # the query matrices (Lq_i, H) of the batch
    hits: dict[str, list]  # the index's answer: documents_ids / distances per token
    k: int  # documents to return per query
    device: str | None  # where the scoring runs
    subsets: list[list[Any]] | None  # allowed ids per query, None for all


class BaseRetriever:
    """Retriever over an index.

    Subclasses implement :meth:`_score_batch`, turning an index's token-level
    hits into ranked documents, and may refuse arguments in
    :meth:`_check_subset`.

    Parameters
    ----------
    index
        A :class:`pylate_clone.indexes.Base` instance.
    """

    default_k_token = 100
    #: Let a token-level index grow ``default_k_token`` with its collection: in
    #: a larger one a token's nearest neighbours reach fewer candidate documents.
    scales_k_token = True
    default_batch_size = 50
    progress_desc = "Retrieving documents"

    def __init__(self, index: Base) -> None:
        if not callable(index) or not (
            hasattr(index, "is_end_to_end_index")
            or hasattr(index, "get_documents_embeddings")
        ):
            raise TypeError(
                "index must be an index (callable, with get_documents_embeddings "
                f"or is_end_to_end_index), got {type(index).__name__}."
            )
        self.index = index

    def _default_k_token(self) -> int:
        """``k_token`` when the caller leaves it to None.

        The index's own ``k_token`` (set by ``index.tune()``) wins; else an
        index with ``scaled_k_token`` (Voyager) sizes :attr:`default_k_token`
        to its collection, when :attr:`scales_k_token`; else
        :attr:`default_k_token`.
        """
        tuned = getattr(self.index, "k_token", None)
        if tuned:
            return tuned
        scaled = getattr(self.index, "scaled_k_token", None)
        if self.scales_k_token and callable(scaled):
            return scaled(self.default_k_token)
        return self.default_k_token

    def _show_progress(self) -> bool:
        return bool(getattr(self.index, "show_progress", True))

    def retrieve(
        self,
        queries_embeddings: Any,
        k: int = 10,
        k_token: int | None = None,
        device: str | None = None,
        batch_size: int | None = None,
        subset: list[list[Any]] | list[Any] | None = None,
        filter: dict[str, Any] | None = None,
        queries: list[str] | None = None,
        hybrid: bool = False,
        fusion: str = "rrf",
        alpha: float = 0.5,
        return_documents: bool = False,
    ) -> list[list[RerankResult]]:
        """Retrieve the ``k`` best documents of every query.

        Parameters
        ----------
        queries_embeddings
            ``n`` query matrices ``(Lq_i, H)`` (list, 3-D array/tensor), or one
            ``(Lq, H)`` matrix for a single query.
        k
            Documents per query; fewer when the collection (or subset) is smaller.
        k_token
            Token-level indexes: neighbours fetched per query token (raised to
            ``k`` if smaller). None: the index's tuned ``k_token``, else the
            depth it sizes to its collection (Voyager's ``scaled_k_token``),
            else ``default_k_token``. Ignored by end-to-end indexes.
        device
            Token-level indexes: where the exact MaxSim rerank runs (default:
            the queries' device, else CPU).
        batch_size
            Token-level indexes: queries per index call.
        subset
            Allowed document ids: one list shared by every query, or one list
            per query. Unknown ids are ignored; an empty list allows nothing.
        filter
            Metadata filter (``{"year": {"$gte": 2020}}``; docs/documents.md):
            only documents whose stored metadata match (AND ``subset``).
        queries
            The ``n`` query texts, for ``hybrid``.
        hybrid
            Fuse the ColBERT ranking with BM25 over the stored texts: both
            lists are taken :data:`HYBRID_DEPTH` deep (at least ``k``), then
            fused; the scores are then the fused ones.
        fusion
            ``"rrf"`` (reciprocal-rank fusion, k=60) or ``"relative"``
            (min-max normalised scores, ``alpha * colbert + (1 - alpha) *
            bm25``).
        alpha
            Weight of ColBERT in ``"relative"`` fusion, in [0, 1].
        return_documents
            Add the stored ``"document"`` and ``"metadata"`` to every hit.

        Returns
        -------
        list[list[RerankResult]]
            Per query, up to ``k`` ``{"id", "score"}`` best first, each id once.
        """
        self._check_subset(subset)
        k = check_k(k)
        if k_token is None:
            k_token = self._default_k_token()
        k_token = check_int("k_token", k_token)
        batch_size = check_int(
            "batch_size", self.default_batch_size if batch_size is None else batch_size
        )
        extras = _check_extras(
            self.index, filter, queries, hybrid, fusion, alpha, return_documents
        )
        depth = max(k, HYBRID_DEPTH) if hybrid else k
        if filter is not None and not self.index.is_end_to_end_index:
            matching = self.index.filter_ids(filter)
            self._check_subset(matching)
            subset = _and_subset(subset, matching)
            # Fewer documents compete for the neighbours: fetch more per token.
            share = max(len(matching), 1) / max(1, len(self.index))
            k_token = min(MAX_K_TOKEN, max(k_token, math.ceil(k_token / share)))
        found = self._retrieve(
            queries_embeddings, depth, k_token, device, batch_size, subset, filter
        )
        if hybrid:
            found = self._fuse(found, extras, k, subset, filter)
        if return_documents:
            found = _with_documents(self.index, found)
        return found

    def _fuse(
        self, found: list, extras: dict[str, Any], k: int, subset: Any, filter: Any
    ) -> list[list[RerankResult]]:
        texts = extras["queries"]
        if len(texts) != len(found):
            raise ValueError(
                f"queries has {len(texts)} texts for {len(found)} query embeddings; "
                "give one text per query."
            )
        keyword = self.index.keyword_search(texts, max(k, HYBRID_DEPTH), filter)
        groups = per_query_subsets(subset, len(found))
        fused = []
        for i, (dense, words) in enumerate(zip(found, keyword)):
            if groups is not None:
                allowed = {normalize_id(d) for d in groups[i]}
                words = [hit for hit in words if hit["id"] in allowed]
            fused.append(fuse(dense, words, extras["fusion"], extras["alpha"], k))
        return fused

    def _retrieve(
        self,
        queries_embeddings: Any,
        k: int,
        k_token: int,
        device: str | None,
        batch_size: int,
        subset: Any,
        filter: Any,
    ) -> list[list[RerankResult]]:
        """ColBERT top ``k`` (the index alone, or token hits reranked)."""
        if getattr(self.index, "is_end_to_end_index", False):
            # The index's __call__ is a public entry that checks the queries
            # (against its dimension too); checking them here as well would
            # do the work twice.
            if filter is None:  # PyLate's and custom indexes take no filter
                return self.index(queries_embeddings, k=k, subset=subset)
            return self.index(queries_embeddings, k=k, subset=subset, filter=filter)
        queries = as_matrices(queries_embeddings, "queries_embeddings")
        subsets = per_query_subsets(subset, len(queries))
        if device is None:
            first = queries[0]
            device = str(first.device) if isinstance(first, torch.Tensor) else "cpu"
        if k > k_token:
            warnings.warn(
                f"k ({k}) is larger than k_token ({k_token}); using k_token={k}.",
                stacklevel=2,
            )
            k_token = k
        results: list[list[RerankResult]] = []
        total = math.ceil(len(queries) / batch_size)
        bar = tqdm.tqdm(
            total=total,
            desc=f"{self.progress_desc} (bs={batch_size})",
            disable=not self._show_progress(),
        )
        with bar:
            for start, batch in zip(
                range(0, len(queries), batch_size),
                iter_batch(queries, batch_size, tqdm_bar=False),
            ):
                hits = self.index(list(batch), k=k_token)
                batch_subsets = (
                    None if subsets is None else subsets[start : start + len(batch)]
                )
                results.extend(
                    self._score_batch(
                        HitBatch(list(batch), hits, k, device, batch_subsets)
                    )
                )
                bar.update(1)
        return results

    def _check_subset(self, subset: Any) -> None:
        """Refuse a ``subset`` this retriever cannot honour (all are accepted here)."""

    def _score_batch(self, batch: HitBatch) -> list[list[RerankResult]]:
        """Ranked documents of each query of ``batch``, at most ``batch.k``."""
        raise NotImplementedError


def _check_extras(
    index: Any,
    filter: Any,
    queries: Any,
    hybrid: Any,
    fusion: Any,
    alpha: Any,
    return_documents: Any,
) -> dict[str, Any]:
    """Check the document-store arguments of ``retrieve`` once, at the entry."""
    for name, value in (("hybrid", hybrid), ("return_documents", return_documents)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}.")
    fusion, alpha = check_fusion(fusion, alpha)
    check_filter(filter)
    needs = {
        "filter": filter is not None,
        "hybrid": hybrid,
        "return_documents": return_documents,
    }
    for name, used in needs.items():
        if used and not hasattr(index, "get_documents"):
            raise ValueError(
                f"{name}: {type(index).__name__} stores no documents or metadata; "
                "PLAID, Voyager and Exact do."
            )
    if hybrid:
        if (
            not isinstance(queries, (list, tuple))
            or not queries
            or not all(isinstance(q, str) for q in queries)
        ):
            raise ValueError(
                "queries must be the list of query texts when hybrid=True, got "
                f"{type(queries).__name__}."
            )
    elif queries is not None:
        raise ValueError("queries (the texts) are only used with hybrid=True.")
    return {"queries": queries, "fusion": fusion, "alpha": alpha}


def _with_documents(index: Any, found: list[list[Any]]) -> list[list[Any]]:
    """Each hit with its stored ``document`` and ``metadata`` added."""
    ids = list(dict.fromkeys(hit["id"] for ranking in found for hit in ranking))
    stored = {d["id"]: d for d in index.get_documents(ids)} if ids else {}
    return [
        [
            {
                **hit,
                "document": stored[hit["id"]]["document"],
                "metadata": stored[hit["id"]]["metadata"],
            }
            for hit in ranking
        ]
        for ranking in found
    ]


def _and_subset(subset: Any, matching: list[Any]) -> Any:
    """``subset`` (shared or per query) AND the ids ``matching`` a filter."""
    if subset is None:
        return matching
    allowed = set(matching)
    if isinstance(subset, (str, int)):
        subset = [subset]
    subset = list(subset)
    if subset and all(isinstance(s, (list, tuple, set)) for s in subset):
        return [[i for i in group if normalize_id(i) in allowed] for group in subset]
    return [i for i in subset if normalize_id(i) in allowed]
