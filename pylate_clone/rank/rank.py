"""Exact MaxSim reranking of candidate documents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

import torch

from ..utils.tensor import convert_to_tensor


class RerankResult(TypedDict):
    """One ranked document: its id as given by the caller and its MaxSim score."""

    id: int | str
    score: float


def _as_matrix(x: Any, name: str) -> torch.Tensor:
    """Return ``x`` as a 2-D ``(n_tokens, H)`` tensor, accepting ``(1, n, H)`` too."""
    tensor = convert_to_tensor(x)
    if tensor.dim() == 3 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() != 2:
        raise ValueError(
            f"{name} must be a 2-D (n_tokens, dim) matrix, got shape "
            f"{tuple(tensor.shape)}."
        )
    return tensor


def _as_batch(x: Any) -> list[Any]:
    """Split a batch of per-item matrices; a lone 2-D matrix is a batch of one."""
    if isinstance(x, (list, tuple)):
        return list(x)
    tensor = convert_to_tensor(x)
    return [tensor] if tensor.dim() == 2 else list(tensor)


def maxsim_ragged(query: torch.Tensor, documents: Sequence[torch.Tensor]) -> torch.Tensor:
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
        ``n`` matrices ``(Ld_i, H)`` on the query's device and dtype.

    Returns
    -------
    torch.Tensor
        ``(n,)`` scores.
    """
    lengths = torch.tensor([len(d) for d in documents], dtype=torch.long)
    longest = int(lengths.max())
    if longest == 0:
        return torch.zeros(len(documents), dtype=query.dtype, device=query.device)
    sims = torch.cat(list(documents)) @ query.T  # (sum Ld, Lq)
    per_token = torch.segment_reduce(
        sims, "max", lengths=lengths.to(sims.device), axis=0, unsafe=True
    )  # (n, Lq); empty segments give -inf
    short = (lengths < longest).to(sims.device)
    if bool(short.any()):
        per_token = torch.where(short[:, None], per_token.clamp_min(0.0), per_token)
    return per_token.sum(dim=1)


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
    results: list[list[RerankResult]] = []
    for i, (query_ids, query, candidates) in enumerate(zip(ids, queries, documents)):
        candidates = _as_batch(candidates)
        if len(query_ids) != len(candidates):
            raise ValueError(
                f"Query {i}: documents_ids has {len(query_ids)} ids but "
                f"documents_embeddings has {len(candidates)} documents."
            )
        q = _as_matrix(query, f"queries_embeddings[{i}]")
        if device is not None:
            q = q.to(device)
        if not candidates:
            results.append([])
            continue
        docs = []
        for j, candidate in enumerate(candidates):
            d = _as_matrix(candidate, f"documents_embeddings[{i}][{j}]")
            if d.shape[1] != q.shape[1]:
                raise ValueError(
                    f"documents_embeddings[{i}][{j}] has dimension {d.shape[1]}, "
                    f"but the query has dimension {q.shape[1]}."
                )
            docs.append(d.to(q.device, q.dtype, non_blocking=True))
        scores = maxsim_ragged(q, docs)
        order = torch.sort(scores, descending=True)
        results.append(
            [
                {"id": query_ids[j], "score": s}
                for j, s in zip(order.indices.tolist(), order.values.tolist())
            ]
        )
    return results
