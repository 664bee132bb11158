"""Shared retrieval loop: end-to-end indexes pass through, token-level ones rerank."""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import tqdm

from ..indexes.base import Base
from ..indexes.utils import as_matrices, check_int, check_k, per_query_subsets
from ..rank import RerankResult
from ..utils.iter_batch import iter_batch

logger = logging.getLogger(__name__)


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
            ``k`` if smaller). Ignored by end-to-end indexes.
        device
            Token-level indexes: where the exact MaxSim rerank runs (default:
            the queries' device, else CPU).
        batch_size
            Token-level indexes: queries per index call.
        subset
            Allowed document ids: one list shared by every query, or one list
            per query. Unknown ids are ignored; an empty list allows nothing.

        Returns
        -------
        list[list[RerankResult]]
            Per query, up to ``k`` ``{"id", "score"}`` best first, each id once.
        """
        self._check_subset(subset)
        k = check_k(k)
        if k_token is None:
            # An index tuned with index.tune() carries its own k_token.
            k_token = getattr(self.index, "k_token", None) or self.default_k_token
        k_token = check_int("k_token", k_token)
        batch_size = check_int(
            "batch_size", self.default_batch_size if batch_size is None else batch_size
        )
        if getattr(self.index, "is_end_to_end_index", False):
            # The index's __call__ is a public entry that checks the queries
            # (against its dimension too); checking them here as well would
            # do the work twice.
            return self.index(queries_embeddings, k=k, subset=subset)
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
