"""Search of the end-to-end segmented indexes (Exact, PLAID): subsets, then hits."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import EndToEndSearch
from ..storage.filters import CompiledFilter
from ..utils import per_query_subsets, to_float32_numpy
from .index import SegmentedIndex


class EndToEndIndex(EndToEndSearch, SegmentedIndex):
    """A segmented index whose ``__call__`` returns ranked documents.

    Subclasses implement :meth:`_search_hits`.
    """

    def _search_hits(
        self, queries: list[np.ndarray], k: int, allowed: list[np.ndarray] | None
    ) -> list[list[tuple[int, int, float]]]:
        raise NotImplementedError

    stores_documents = True

    def _search(
        self, queries: list, k: int, subset: Any, filter: CompiledFilter | None = None
    ) -> list[list[dict]]:
        queries = [to_float32_numpy(q) for q in queries]
        groups = per_query_subsets(subset, len(queries))
        if groups is None:
            if filter is None:
                hits = self._search_hits(queries, k, None)
            else:
                # One filter for every query: its rows are looked up once and
                # the queries are searched together.
                allowed = self._filter_allowed(filter)
                hits = (
                    self._search_hits(queries, k, self._unless_everything(allowed))
                    if any(len(a) for a in allowed)
                    else [[] for _ in queries]
                )
            return [self._hits_to_results(h) for h in hits]
        results: list[list[dict[str, Any]]] = []
        # Per distinct group: whether it allows any row, and the rows to search.
        cache: dict[int, tuple[bool, list[np.ndarray] | None]] = {}
        for query, group in zip(queries, groups):
            entry = cache.get(id(group))
            if entry is None:
                allowed = self._allowed(group)
                if filter is not None:
                    allowed = self._filter_allowed(filter, allowed)
                entry = (any(len(a) for a in allowed), self._unless_everything(allowed))
                cache[id(group)] = entry
            any_allowed, rows = entry
            if not any_allowed:
                results.append([])
                continue
            hits = self._search_hits([query], k, rows)[0]
            results.append(self._hits_to_results(hits))
        return results

    def _unless_everything(self, allowed: list[np.ndarray]) -> list[np.ndarray] | None:
        """None when ``allowed`` (sorted live rows per segment) is every live row.

        A filter or subset matching the whole collection is then searched as
        no filter: the same results, without the per-row checks and the
        filtered path's choices.
        """
        for segment, rows in zip(self._segments, allowed):
            live = segment.live
            if len(rows) != (
                len(segment.ids) if live is None else np.count_nonzero(live)
            ):
                return allowed
        return None
