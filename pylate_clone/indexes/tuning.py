"""Recall against exact MaxSim, and the search-knob tuner of PLAID and Voyager.

The reference is always :func:`pylate_clone.indexes.engine.search.exact_search`
over the index's own stored vectors, so recall measures only what the
approximate search loses (PyLate's issue #83 asked for exactly this).
"""

from __future__ import annotations

import itertools
import time
import warnings
from typing import Any

import numpy as np

from .engine import search
from .segmented.views import IndexSnapshot, snapshot
from .utils import as_matrices, check_k, to_float32_numpy

Key = tuple[int, int]  # (segment number, row)


def recall_at_k(got: list[list[Any]], reference: list[list[Any]], k: int) -> float:
    """Mean over queries of ``|got[:k] & reference[:k]| / |reference[:k]|``.

    Parameters
    ----------
    got, reference
        Per query, ids (or any hashable keys) best first.
    k
        Cut-off.
    """
    values = []
    for g, r in zip(got, reference):
        truth = set(r[:k])
        if truth:
            values.append(len(set(g[:k]) & truth) / len(truth))
    return float(np.mean(values)) if values else 1.0


def _queries(
    index: Any, queries_embeddings: Any
) -> tuple[list[np.ndarray], IndexSnapshot]:
    state = snapshot(index)
    if not state.num_docs:
        raise ValueError("The index is empty. Please add documents before tuning.")
    queries = as_matrices(queries_embeddings, "queries_embeddings", state.dim)
    return [to_float32_numpy(q) for q in queries], state


def _exact_keys(
    state: IndexSnapshot, queries: list[np.ndarray], k: int
) -> list[list[Key]]:
    hits = search.exact_search(queries, state.views, k, book=state.book)
    return [[(s, r) for s, r, _ in found] for found in hits]


def recall_against_exact(
    index: Any, queries_embeddings: Any, k: int = 10, **settings: int
) -> float:
    """Recall@k of ``index``'s search (current or given knobs) against exact MaxSim.

    Parameters
    ----------
    index
        A :class:`~pylate_clone.indexes.PLAID` or
        :class:`~pylate_clone.indexes.Voyager` (its retriever pipeline:
        token candidates reranked exactly).
    queries_embeddings
        Query matrices ``(Lq_i, H)``.
    k
        Cut-off.
    **settings
        Knobs to evaluate instead of the instance's (PLAID: ``n_ivf_probe``,
        ``n_full_scores``; Voyager: ``ef_search``, ``k_token``).
    """
    k = check_k(k)
    queries, state = _queries(index, queries_embeddings)
    reference = _exact_keys(state, queries, k)
    setting = {**index._current_setting(k), **settings}
    got = [index._search_keys(q, k, **setting) for q in queries]
    return recall_at_k(got, reference, k)


def tune(
    index: Any,
    queries_embeddings: Any,
    target_recall: float = 0.95,
    k: int = 10,
    settings: list[dict[str, int]] | None = None,
) -> list[dict[str, Any]]:
    """Time each knob setting on a query sample; keep the fastest reaching the target.

    Parameters
    ----------
    index
        A PLAID or Voyager index.
    queries_embeddings
        A sample of queries, ``(Lq_i, H)`` each (a few dozen are enough).
    target_recall
        Recall@k against exact MaxSim to reach, in ``(0, 1]``.
    k
        Cut-off of the recall and of the timed searches.
    settings
        Knob settings to try (dicts of the index's knob names); None uses the
        index's default grid.

    Returns
    -------
    list[dict]
        One row per setting, ``{**setting, "recall": r, "p50_ms": t}``
        (one query per call, median milliseconds), plus an ``{"exact":
        True, ...}`` row for the exhaustive scan; sorted by ``p50_ms``. The
        chosen setting is applied to ``index``; if none reaches the target,
        the one with the best recall is applied and a warning says so.
    """
    k = check_k(k)
    if not 0 < float(target_recall) <= 1:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall!r}.")
    queries, state = _queries(index, queries_embeddings)
    views = state.views
    reference, times = [], []
    for query in queries:
        start = time.perf_counter()
        hits = search.exact_search([query], views, k, book=state.book)[0]
        times.append(time.perf_counter() - start)
        reference.append([(s, r) for s, r, _ in hits])
    table = [{"exact": True, "recall": 1.0, "p50_ms": 1e3 * float(np.median(times))}]
    for setting in settings or index._tune_grid(k):
        got, times = [], []
        for query in queries:
            start = time.perf_counter()
            got.append(index._search_keys(query, k, **setting))
            times.append(time.perf_counter() - start)
        table.append(
            {
                **setting,
                "recall": recall_at_k(got, reference, k),
                "p50_ms": 1e3 * float(np.median(times)),
            }
        )
    tried = [row for row in table if "exact" not in row]
    good = [row for row in tried if row["recall"] >= target_recall]
    if good:
        best = min(good, key=lambda row: row["p50_ms"])
    else:
        best = max(tried, key=lambda row: (row["recall"], -row["p50_ms"]))
        warnings.warn(
            f"No setting reached recall@{k} {target_recall}; applied the best "
            f"({best['recall']:.3f}).",
            stacklevel=2,
        )
    index._apply_setting({key: best[key] for key in index._knob_names})
    return sorted(table, key=lambda row: row["p50_ms"])


def grid(**axes: list[int]) -> list[dict[str, int]]:
    """Cartesian product of knob values as a list of settings."""
    names = list(axes)
    return [dict(zip(names, values)) for values in itertools.product(*axes.values())]


class Tunable:
    """Mixin giving an index :meth:`tune` (the index provides the knob hooks).

    Hooks: ``_knob_names``, ``_current_setting(k)``, ``_tune_grid(k)``,
    ``_search_keys(query, k, **setting)``, ``_apply_setting(setting)``.
    """

    def tune(
        self,
        queries_embeddings: Any,
        target_recall: float = 0.95,
        k: int = 10,
        settings: list[dict[str, int]] | None = None,
    ) -> list[dict[str, Any]]:
        """Pick the fastest search setting reaching ``target_recall`` against exact.

        PLAID tunes ``n_ivf_probe`` / ``n_full_scores``; Voyager ``ef_search``
        / ``k_token`` (the retriever reads ``k_token`` from the index). The
        chosen setting is stored on this instance; see :func:`tune` for the
        returned table.
        """
        return tune(self, queries_embeddings, target_recall, k, settings)
