"""Search entry point shared by the end-to-end segmented indexes (Exact, PLAID)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._idmap import DocumentId
from .segmented import SegmentedIndex
from .utils import as_matrices, check_k, per_query_subsets, to_float32_numpy


class EndToEndIndex(SegmentedIndex):
    """A segmented index whose ``__call__`` returns ranked documents.

    Subclasses implement :meth:`_search_hits`.
    """

    is_end_to_end_index = True

    def _search_hits(
        self, queries: list[np.ndarray], k: int, allowed: list[np.ndarray] | None
    ) -> list[list[tuple[int, int, float]]]:
        raise NotImplementedError

    def __call__(
        self,
        queries_embeddings: Any,
        k: int = 10,
        subset: list[DocumentId] | list[list[DocumentId]] | None = None,
    ) -> list[list[dict[str, Any]]]:
        """Search the index.

        Parameters
        ----------
        queries_embeddings
            ``n`` query matrices ``(Lq_i, H)``, or one ``(Lq, H)`` matrix.
        k
            Results per query (fewer when the index, or the subset, is smaller).
        subset
            Allowed document ids: one list for all queries or one list per
            query. Unknown ids are ignored; an empty list allows nothing.

        Returns
        -------
        list[list[dict]]
            Per query, up to ``k`` ``{"id", "score"}`` best first.
        """
        k = check_k(k)
        self._sync()
        queries = as_matrices(queries_embeddings, "queries_embeddings", self._dim)
        if not len(self._ids):
            raise ValueError(
                "The index is empty. Please add documents before querying."
            )
        queries = [to_float32_numpy(q) for q in queries]
        groups = per_query_subsets(subset, len(queries))
        if groups is None:
            hits = self._search_hits(queries, k, None)
            return [self._hits_to_results(h) for h in hits]
        results: list[list[dict[str, Any]]] = []
        cache: dict[int, list[np.ndarray]] = {}
        for query, group in zip(queries, groups):
            allowed = cache.get(id(group))
            if allowed is None:
                allowed = cache[id(group)] = self._allowed(group)
            if not any(len(a) for a in allowed):
                results.append([])
                continue
            hits = self._search_hits([query], k, allowed)[0]
            results.append(self._hits_to_results(hits))
        return results
