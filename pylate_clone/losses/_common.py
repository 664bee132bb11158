"""Helpers shared by the ColBERT losses: model unwrapping, embedding, masks, gathering."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from ..utils.distributed import (
    all_gather,
    all_gather_with_gradients,
    gather_sizes,
    get_rank,
)
from ..utils.tensor import pad_dim, skiplist_mask

# A batch as the losses receive it: tokenized columns (queries first), their
# (B, L) token masks, and the dataset's label column (teacher scores or None).
Columns = list[dict[str, torch.Tensor]]
Masks = list[torch.Tensor]
Labels = torch.Tensor | None


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """Strip DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    seen = set()
    while id(model) not in seen:
        seen.add(id(model))
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if isinstance(inner, torch.nn.Module):
            model = inner
        else:
            break
    return model


def model_attribute(model: torch.nn.Module, name: str) -> Any:
    """Read a ColBERT attribute (``skiplist``...) through any wrapper."""
    if hasattr(model, name):
        return getattr(model, name)
    return getattr(unwrap_model(model), name)


def extract_skiplist_mask(
    sentence_features: Iterable[dict[str, torch.Tensor]],
    skiplist: Sequence[int] | None = None,
) -> list[torch.Tensor]:
    """Boolean token masks for a list of tokenized features.

    The first feature (the queries) gets its attention mask; every later one
    (documents) gets ``skiplist_mask AND attention_mask``.

    Parameters
    ----------
    sentence_features
        Tokenized batches (``input_ids`` and ``attention_mask`` of shape
        ``(B, L)``), queries first.
    skiplist
        Token ids masked out of documents.

    Returns
    -------
    list[torch.Tensor]
        One ``(B, L)`` bool tensor per feature.

    Examples
    --------
    >>> import torch
    >>> features = [
    ...     {"input_ids": torch.tensor([[1, 2, 3, 4]]),
    ...      "attention_mask": torch.tensor([[1, 1, 1, 1]])}
    ...     for _ in range(3)
    ... ]
    >>> extract_skiplist_mask(features, skiplist=[1, 2, 3])
    [tensor([[True, True, True, True]]), tensor([[False, False, False,  True]]), tensor([[False, False, False,  True]])]
    """
    masks = []
    for position, features in enumerate(sentence_features):
        attention = features["attention_mask"].bool()
        if position == 0 or not skiplist:
            masks.append(attention)
        else:
            keep = skiplist_mask(features["input_ids"], list(skiplist)).to(
                attention.device
            )
            masks.append(keep.bool() & attention)
    return masks


def embed(model: torch.nn.Module, features: dict[str, Any]) -> torch.Tensor:
    """L2-normalised token embeddings ``(B, L, H)`` of one tokenized batch."""
    return F.normalize(model(dict(features))["token_embeddings"], p=2, dim=-1)


def stack_documents(
    documents: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor],
    gather_across_devices: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Stack document columns, optionally gathered from every rank.

    Parameters
    ----------
    documents
        ``N`` tensors ``(B, Ld, H)``: positives, then negatives.
    masks
        ``N`` bool masks ``(B, Ld)``.
    gather_across_devices
        All-gather the documents (differentiably) and masks from every rank.

    Returns
    -------
    tuple
        ``(docs (B_tot, N, Ld, H), masks (B_tot, N, Ld), offset)`` where
        ``offset`` is the number of rows contributed by earlier ranks.
    """
    length = max(doc.shape[1] for doc in documents)
    documents = [pad_dim(doc, length) for doc in documents]
    masks = [pad_dim(mask, length) for mask in masks]
    offset = 0
    if gather_across_devices:
        sizes = gather_sizes(documents[0])
        offset = sum(sizes[: get_rank()])
        documents = [torch.cat(all_gather_with_gradients(doc)) for doc in documents]
        masks = [torch.cat(all_gather(mask)) for mask in masks]
    return torch.stack(documents, dim=1), torch.stack(masks, dim=1), offset


def chunked_scores(
    score_metric: Callable,
    queries: torch.Tensor,
    documents: torch.Tensor,
    queries_mask: torch.Tensor | None,
    documents_mask: torch.Tensor,
    chunk_size: int | None,
) -> Iterable[tuple[int, int, torch.Tensor]]:
    """Yield ``(begin, end, scores[begin:end])`` over query chunks of ``chunk_size``."""
    total = queries.shape[0]
    step = total if not chunk_size else chunk_size
    for begin in range(0, total, max(step, 1)):
        end = min(begin + step, total)
        scores = score_metric(
            queries[begin:end],
            documents,
            queries_mask=None if queries_mask is None else queries_mask[begin:end],
            documents_mask=documents_mask,
        )
        yield begin, end, scores


def check_features(sentence_features: Sequence[dict], minimum: int, loss: str) -> None:
    """Raise a clear error when a loss receives too few feature columns."""
    if len(sentence_features) < minimum:
        raise ValueError(
            f"{loss} needs at least {minimum} text columns (queries first, then "
            f"documents), got {len(sentence_features)}. Check the dataset columns."
        )
