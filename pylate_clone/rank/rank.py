"""Exact MaxSim reranking of candidate documents."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from ..scores.kernels.ragged import maxsim_ragged, maxsim_ragged_batch
from ..utils.tensor import convert_to_tensor
from ..utils.tensor import reshape_embeddings as reshape_embeddings
from ..utils.validation import check_finite, check_matrix, is_plain_matrix
from ._result import RerankResult

# PyLate code imports these two from ``pylate.rank.rank``.
from .xtr import score_xtr as score_xtr


def _as_batch(x: Any) -> list[Any]:
    """Split a batch of per-item matrices; a lone 2-D matrix is a batch of one."""
    if isinstance(x, (list, tuple)):
        return list(x)
    tensor = convert_to_tensor(x)
    return [tensor] if tensor.dim() == 2 else list(tensor)


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic GC while building many small result dicts.

    Each result is a new dict; every few hundred allocations CPython runs a
    collection that walks the whole heap (large once torch is imported):
    profiled, that was a fifth of ``rerank``'s time on 64 x 100 candidates.
    The dicts hold no cycles, so nothing is left for the GC to find.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _sort(query_ids: Sequence[Any], scores: torch.Tensor) -> list[RerankResult]:
    order = torch.sort(scores, descending=True, stable=True)
    return [
        {"id": query_ids[j], "score": s}
        for j, s in zip(order.indices.tolist(), order.values.tolist())
    ]


def rerank(
    documents_ids: Sequence[Sequence[Any]],
    queries_embeddings: Any,
    documents_embeddings: Any,
    device: str | torch.device | None = None,
) -> list[list[RerankResult]]:
    """Rank each query's candidate documents by exact MaxSim.

    Parameters
    ----------
    documents_ids
        One list of ids (any hashable, e.g. int or str) per query.
    queries_embeddings
        One ``(Lq, H)`` matrix per query (list, array or tensor); a single 2-D
        matrix is a batch of one.
    documents_embeddings
        One list of ``(Ld_j, H)`` matrices per query, aligned with
        ``documents_ids`` (the output of ``encode`` on a list of lists).
    device
        Where to score (e.g. ``"cuda"``); ``None`` scores on the query's device.

    Returns
    -------
    list[list[RerankResult]]
        Per query, every candidate as ``{"id", "score"}``, best first. A query
        with no candidates gets ``[]``; no queries gives ``[]``.

    Raises
    ------
    TypeError
        If one of the three inputs is None.
    ValueError
        If the three inputs do not have one entry per query, a query's ids and
        embeddings differ in length, or an embedding is not a 2-D matrix of the
        query's dimension.
    """
    for name, value in (
        ("documents_ids", documents_ids),
        ("queries_embeddings", queries_embeddings),
        ("documents_embeddings", documents_embeddings),
    ):
        if value is None:
            raise TypeError(f"{name} must be given (one entry per query), got None.")
    queries = _as_batch(queries_embeddings)
    documents = _as_batch(documents_embeddings)
    ids = list(documents_ids)
    if not (len(queries) == len(documents) == len(ids)):
        raise ValueError(
            "rerank needs one entry per query in documents_ids, queries_embeddings "
            f"and documents_embeddings, got {len(ids)}, {len(queries)} and "
            f"{len(documents)}."
        )
    tasks: list[tuple[Sequence[Any], torch.Tensor, list[Any]]] = []
    has_candidates: list[bool] = []
    task_positions: list[int] = []
    for i, (query_ids, query, candidates) in enumerate(zip(ids, queries, documents)):
        candidates = _as_batch(candidates)
        if len(query_ids) != len(candidates):
            raise ValueError(
                f"Query {i}: documents_ids has {len(query_ids)} ids but "
                f"documents_embeddings has {len(candidates)} documents."
            )
        has_candidates.append(bool(candidates))
        if not candidates:
            continue
        query = check_matrix(query, f"queries_embeddings[{i}]", squeeze=False)
        check_finite(query, f"queries_embeddings[{i}]")
        q = torch.as_tensor(query)
        if device is not None:
            q = q.to(device)
        dim = q.shape[1]
        docs = [
            candidate
            if is_plain_matrix(candidate, dim)
            else check_matrix(
                candidate, f"documents_embeddings[{i}][{j}]", dim, squeeze=False
            )
            for j, candidate in enumerate(candidates)
        ]
        tasks.append((query_ids, q, docs))
        task_positions.append(i)

    on_cpu = [i for i, task in enumerate(tasks) if task[1].device.type == "cpu"]
    # CPU queries share one pool of blocks (all queries' candidates at once).
    cpu_scores = maxsim_ragged_batch(
        [tasks[i][1] for i in on_cpu], [tasks[i][2] for i in on_cpu]
    )
    by_task = {i: torch.from_numpy(scores) for i, scores in zip(on_cpu, cpu_scores)}
    for i, (_, q, docs) in enumerate(tasks):
        if i not in by_task:
            by_task[i] = maxsim_ragged(q, docs)
        # NaN / inf in a candidate reaches its score: checking the scores costs
        # nothing, and only then are the candidates searched for the culprit.
        if not bool(torch.isfinite(by_task[i]).all()):
            check_finite(docs, f"documents_embeddings[{task_positions[i]}]")
    with _no_cyclic_gc():
        scored = [
            _sort(ids_, by_task[i].to(q.dtype)) for i, (ids_, q, _) in enumerate(tasks)
        ]
    results: list[list[RerankResult]] = []
    scored_iter = iter(scored)
    for present in has_candidates:
        results.append(next(scored_iter) if present else [])
    return results
