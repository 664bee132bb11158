"""Exact MaxSim reranking of candidate documents."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypedDict

import numpy as np
import torch

from ..utils.tensor import convert_to_tensor


class RerankResult(TypedDict):
    """One ranked document: its id as given by the caller and its MaxSim score."""

    id: int | str
    score: float


def _as_matrix(x: Any, name: str) -> torch.Tensor | np.ndarray:
    """Return ``x`` as a 2-D ``(n_tokens, H)`` matrix, accepting ``(1, n, H)`` too.

    numpy arrays stay numpy (they are concatenated by numpy later, which is
    cheaper than wrapping thousands of them in tensors one by one).
    """
    kind = type(x)
    if kind is not np.ndarray and kind is not torch.Tensor:
        x = convert_to_tensor(x)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D (n_tokens, dim) matrix, got shape {tuple(x.shape)}."
        )
    return x


def _as_batch(x: Any) -> list[Any]:
    """Split a batch of per-item matrices; a lone 2-D matrix is a batch of one."""
    if isinstance(x, (list, tuple)):
        return list(x)
    tensor = convert_to_tensor(x)
    return [tensor] if tensor.dim() == 2 else list(tensor)


def _segment_max(sims: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """Per-segment column maxima of ``sims`` ``(sum L, Lq)``; empty segments give 0."""
    n = len(lengths)
    if sims.device.type != "cpu":
        per_token = torch.segment_reduce(
            sims,
            "max",
            lengths=torch.tensor(lengths, device=sims.device),
            axis=0,
            unsafe=True,
        )
        return torch.nan_to_num(per_token, neginf=0.0)
    lengths_np = np.asarray(lengths, dtype=np.intp)
    nonempty = lengths_np > 0
    offsets = np.zeros(n, dtype=np.intp)
    np.cumsum(lengths_np[:-1], out=offsets[1:])
    # numpy's reduceat is a tight loop; torch.segment_reduce is ~2x slower on CPU.
    maxima = np.maximum.reduceat(sims.numpy(), offsets[nonempty], axis=0)
    if nonempty.all():
        return torch.from_numpy(maxima)
    out = np.zeros((n, sims.shape[1]), dtype=maxima.dtype)
    out[nonempty] = maxima
    return torch.from_numpy(out)


def maxsim_ragged(
    query: torch.Tensor, documents: Sequence[torch.Tensor]
) -> torch.Tensor:
    """MaxSim of one query against ragged documents, as if zero-padded together.

    The documents are concatenated (no padding FLOPs), scored with one matmul and
    reduced per document with a segment max. Because PyLate zero-pads candidates
    to the longest one without a mask, a shorter document's per-token maximum
    is floored at 0; that is reproduced here so scores are identical.

    Parameters
    ----------
    query
        ``(Lq, H)`` query token embeddings.
    documents
        ``n`` matrices ``(Ld_i, H)`` (tensors or numpy arrays).

    Returns
    -------
    torch.Tensor
        ``(n,)`` scores.
    """
    lengths = [len(d) for d in documents]
    longest = max(lengths)
    if longest == 0:
        return torch.zeros(len(documents), dtype=query.dtype, device=query.device)
    if all(type(d) is np.ndarray for d in documents):
        stacked = torch.from_numpy(np.concatenate(documents)).to(
            query.device, query.dtype
        )
    else:
        stacked = torch.cat(
            [torch.as_tensor(d).to(query.device, query.dtype) for d in documents]
        )
    sims = stacked @ query.T  # (sum Ld, Lq)
    per_token = _segment_max(sims, lengths)  # (n, Lq)
    short = torch.tensor(lengths, device=per_token.device) < longest
    if bool(short.any()):
        per_token = torch.where(short[:, None], per_token.clamp_min(0.0), per_token)
    return per_token.sum(dim=1)


def _score_and_sort(
    query_ids: Sequence[Any],
    query: torch.Tensor,
    documents: list[torch.Tensor | np.ndarray],
) -> list[RerankResult]:
    order = torch.sort(maxsim_ragged(query, documents), descending=True)
    return [
        {"id": query_ids[j], "score": s}
        for j, s in zip(order.indices.tolist(), order.values.tolist())
    ]


def _init_worker() -> None:
    # Queries run in parallel threads, so each matmul uses one core: small
    # matmuls lose more to thread synchronisation than they gain from it.
    torch.set_num_threads(1)


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
    ValueError
        If the three inputs do not have one entry per query, a query's ids and
        embeddings differ in length, or an embedding is not a 2-D matrix of the
        query's dimension.
    """
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
        q = torch.as_tensor(_as_matrix(query, f"queries_embeddings[{i}]"))
        if device is not None:
            q = q.to(device)
        dim = q.shape[1]
        docs = []
        for j, candidate in enumerate(candidates):
            d = _as_matrix(candidate, f"documents_embeddings[{i}][{j}]")
            if d.shape[1] != dim:
                raise ValueError(
                    f"documents_embeddings[{i}][{j}] has dimension {d.shape[1]}, "
                    f"but the query has dimension {dim}."
                )
            docs.append(d)
        tasks.append((query_ids, q, docs))

    workers = min(torch.get_num_threads(), len(tasks))
    on_cpu = all(task[1].device.type == "cpu" for task in tasks)
    if workers > 1 and on_cpu:
        with ThreadPoolExecutor(max_workers=workers, initializer=_init_worker) as pool:
            scored = list(pool.map(lambda task: _score_and_sort(*task), tasks))
    else:
        scored = [_score_and_sort(*task) for task in tasks]
    results: list[list[RerankResult]] = []
    scored_iter = iter(scored)
    for present in has_candidates:
        results.append(next(scored_iter) if present else [])
    return results
