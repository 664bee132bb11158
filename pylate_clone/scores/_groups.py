"""Inputs of the training scorers that score queries against groups of documents.

:class:`~pylate_clone.scores.ColBERTScores` and
:class:`~pylate_clone.scores.XTRScores` both take queries ``(A, S, H)`` and
documents ``(Qd, N, T, H)`` (``N`` documents per row: positive, then
negatives) and score every query against every document.
"""

from __future__ import annotations

from typing import Any

import torch

from ..utils.tensor import convert_to_tensor
from ..utils.validation import as_tensor


def mask_of_shape(name: str, mask: Any, shape: tuple[int, ...]) -> torch.Tensor:
    """``mask`` as a tensor, after checking it has exactly ``shape``."""
    mask = convert_to_tensor(mask)
    if tuple(mask.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(mask.shape)}.")
    return mask


def flatten_groups(
    queries_embeddings: Any, documents_embeddings: Any, documents_mask: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Checked queries and the document groups flattened to one batch.

    Returns
    -------
    tuple
        Queries ``(A, S, H)``, documents ``(Qd * N, T, H)`` and their mask
        ``(Qd * N, T)`` (None without one). Row-major flattening of
        ``(Qd, N)`` is the query-major column order of the scores: column
        ``d * N + k`` is slot ``k`` of row ``d``.
    """
    q = as_tensor(queries_embeddings, "queries_embeddings", 3)
    d = as_tensor(documents_embeddings, "documents_embeddings", 4)
    groups, n, t, h = d.shape
    mask = None
    if documents_mask is not None:
        mask = mask_of_shape("documents_mask", documents_mask, (groups, n, t))
        mask = mask.reshape(groups * n, t)
    return q, d.reshape(groups * n, t, h), mask
