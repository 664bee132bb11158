"""MaxSim (late-interaction) scoring functions.

Masks are *multiplicative*, as in PyLate: a masked similarity becomes 0 (not
``-inf``), so a masked or zero-padded document token scores 0 and can win the
max when every real similarity is negative; a masked query token adds 0.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..utils.tensor import convert_to_tensor
from ..utils.validation import as_tensor, check_finite, check_matrix
from ._groups import flatten_groups, mask_of_shape

_BACKENDS = ("auto", "torch")


def _check_backend(backend: str | None) -> None:
    """Validate ``backend`` (or ``$PYLATE_SCORES_BACKEND``); only torch math exists here."""
    value = backend if backend is not None else os.environ.get("PYLATE_SCORES_BACKEND")
    if value is None:
        return
    if value in ("flash", "lik"):
        raise ValueError(
            f"backend={value!r} needs an optional kernel that pylate_clone does not "
            f"ship; use one of {_BACKENDS}."
        )
    if value not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS} or None, got {value!r}.")


def _reduce_maxsim(
    sim: torch.Tensor,
    documents_mask: torch.Tensor | None,
    queries_mask: torch.Tensor | None,
) -> torch.Tensor:
    """Masked MaxSim reduction of ``sim`` ``(A, S, G, T)`` to ``(A, G)``.

    ``documents_mask`` must broadcast against ``sim``; ``queries_mask`` is ``(A, S)``.
    """
    if documents_mask is not None:
        sim = sim * documents_mask.to(sim.device, sim.dtype)
    per_token = sim.amax(dim=3)  # (A, S, G)
    if queries_mask is not None:
        per_token = per_token * queries_mask.to(sim.device, sim.dtype)[:, :, None]
    return per_token.sum(dim=1)


def colbert_scores(
    queries_embeddings: Any,
    documents_embeddings: Any,
    queries_mask: Any = None,
    documents_mask: Any = None,
    backend: str | None = None,
) -> torch.Tensor:
    """MaxSim score of every query against every document.

    Parameters
    ----------
    queries_embeddings
        ``(A, S, H)`` query token embeddings (tensor, array or list of equal-shape
        matrices).
    documents_embeddings
        ``(B, T, H)`` document token embeddings, zero-padded to a common length.
    queries_mask
        Optional ``(A, S)`` mask; masked query tokens contribute 0.
    documents_mask
        Optional ``(B, T)`` mask; masked document similarities become 0.
    backend
        ``None``, ``"auto"`` or ``"torch"``: all run the torch math.

    Returns
    -------
    torch.Tensor
        ``(A, B)`` scores: ``sum_i max_j <q_i, d_j>``.
    """
    _check_backend(backend)
    q = as_tensor(queries_embeddings, "queries_embeddings", 3)
    d = as_tensor(documents_embeddings, "documents_embeddings", 3)
    return _all_pairs(q, d, queries_mask, documents_mask)


def _all_pairs(
    q: torch.Tensor, d: torch.Tensor, queries_mask: Any, documents_mask: Any
) -> torch.Tensor:
    """:func:`colbert_scores` on checked ``(A, S, H)`` and ``(B, T, H)`` tensors."""
    if q.shape[-1] != d.shape[-1]:
        raise ValueError(
            "queries_embeddings and documents_embeddings must share the embedding "
            f"dimension, got {q.shape[-1]} and {d.shape[-1]}."
        )
    d = d.to(q.device, q.dtype)
    a, s, h = q.shape
    b, t, _ = d.shape
    # One (A*S, B*T) matmul instead of an einsum over a 4-D tensor.
    sim = (q.reshape(a * s, h) @ d.reshape(b * t, h).T).view(a, s, b, t)
    dm = qm = None
    if documents_mask is not None:
        dm = mask_of_shape("documents_mask", documents_mask, (b, t))[None, None, :, :]
    if queries_mask is not None:
        qm = mask_of_shape("queries_mask", queries_mask, (a, s))
    return _reduce_maxsim(sim, dm, qm)


def colbert_scores_pairwise(
    queries_embeddings: Any, documents_embeddings: Any, backend: str | None = None
) -> torch.Tensor:
    """MaxSim score of each query with the document at the same position.

    Parameters
    ----------
    queries_embeddings
        ``n`` query matrices ``(S_i, H)``; may be ragged.
    documents_embeddings
        ``n`` document matrices ``(T_i, H)``; may be ragged.
    backend
        ``None``, ``"auto"`` or ``"torch"``.

    Returns
    -------
    torch.Tensor
        ``(n,)`` scores.
    """
    _check_backend(backend)
    if len(queries_embeddings) != len(documents_embeddings):
        raise ValueError(
            "queries_embeddings and documents_embeddings must have the same length, "
            f"got {len(queries_embeddings)} and {len(documents_embeddings)}."
        )
    queries, documents = [], []
    for i, (query, document) in enumerate(
        zip(queries_embeddings, documents_embeddings)
    ):
        q = check_matrix(query, f"queries_embeddings[{i}]", squeeze=False)
        d = check_matrix(
            document, f"documents_embeddings[{i}]", dim=q.shape[1], squeeze=False
        )
        queries.append(q)
        documents.append(d)
    check_finite(queries, "queries_embeddings")
    check_finite(documents, "documents_embeddings")
    scores = []
    for query, document in zip(queries, documents):
        q = convert_to_tensor(query)
        d = convert_to_tensor(document).to(q.device, q.dtype)
        scores.append((q @ d.T).amax(dim=1).sum())
    return torch.stack(scores)


def colbert_kd_scores(
    queries_embeddings: Any,
    documents_embeddings: Any,
    queries_mask: Any = None,
    documents_mask: Any = None,
    backend: str | None = None,
) -> torch.Tensor:
    """MaxSim score of each query against its own group of documents.

    Parameters
    ----------
    queries_embeddings
        ``(A, S, H)`` query token embeddings.
    documents_embeddings
        ``(A, N, T, H)``: ``N`` documents per query.
    queries_mask
        Optional ``(A, S)`` multiplicative mask.
    documents_mask
        Optional ``(A, N, T)`` multiplicative mask.
    backend
        ``None``, ``"auto"`` or ``"torch"``.

    Returns
    -------
    torch.Tensor
        ``(A, N)`` scores.
    """
    _check_backend(backend)
    q = as_tensor(queries_embeddings, "queries_embeddings", 3)
    d = as_tensor(documents_embeddings, "documents_embeddings", 4)
    if d.shape[0] != q.shape[0] or d.shape[-1] != q.shape[-1]:
        raise ValueError(
            "documents_embeddings must have shape (A, N, T, H) matching queries "
            f"(A, S, H); got {tuple(d.shape)} for queries {tuple(q.shape)}."
        )
    d = d.to(q.device, q.dtype)
    a, s, _ = q.shape
    _, n, t, _ = d.shape
    # (A, S, H) x (A, H, N*T) -> (A, S, N, T)
    sim = torch.bmm(q, d.reshape(a, n * t, -1).transpose(1, 2)).view(a, s, n, t)
    dm = qm = None
    if documents_mask is not None:
        dm = mask_of_shape("documents_mask", documents_mask, (a, n, t))[:, None, :, :]
    if queries_mask is not None:
        qm = mask_of_shape("queries_mask", queries_mask, (a, s))
    return _reduce_maxsim(sim, dm, qm)


class ColBERTScores:
    """Contrastive scorer: every query against every document of every group.

    Called with queries ``(Qq, Qt, H)`` and documents ``(Qd, N, Dt, H)`` (``N``
    documents per row: positive then negatives), it returns ``(Qq, Qd * N)`` in
    query-major order: column ``d * N + k`` is slot ``k`` of row ``d``, so the
    positive of query ``i`` in a matched batch is column ``i * N``.
    """

    def __call__(
        self,
        queries_embeddings: Any,
        documents_embeddings: Any,
        queries_mask: Any = None,
        documents_mask: Any = None,
        backend: str | None = None,
    ) -> torch.Tensor:
        _check_backend(backend)
        q, d, flat_mask = flatten_groups(
            queries_embeddings, documents_embeddings, documents_mask
        )
        return _all_pairs(q, d, queries_mask, flat_mask)
