"""Knowledge distillation: KL divergence between teacher and student score distributions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..scores import colbert_kd_scores
from ._base import ColBERTLoss
from ._common import Columns, Labels, Masks, embed

__all__ = ["Distillation"]


def minmax_normalize(scores: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Rescale each row of ``scores`` ``(B, n)`` to ``[0, 1]``."""
    low = scores.min(dim=1, keepdim=True).values
    high = scores.max(dim=1, keepdim=True).values
    return (scores - low) / (high - low + eps)


class Distillation(ColBERTLoss):
    """KL divergence from the teacher's to the student's distribution over documents.

    Each query comes with ``n_ways`` documents and one teacher score per document.
    The student scores the documents with MaxSim; both score vectors go through a
    log-softmax and the loss is ``KL(teacher || student)``. With
    ``normalize_scores`` the *student* scores are min-max rescaled per query first
    (the teacher scores are used as given). There are no in-batch negatives.

    Parameters
    ----------
    model
        The :class:`~pylate_clone.models.ColBERT` model to train.
    score_metric
        ``(queries (B, Lq, H), documents (B, n, Ld, H), queries_mask,
        documents_mask) -> (B, n)``; default
        :func:`~pylate_clone.scores.colbert_kd_scores`.
    size_average
        ``"batchmean"`` (``True``) or ``"sum"`` reduction of the KL divergence.
    normalize_scores
        Min-max normalise the student scores per query.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        score_metric: Callable = colbert_kd_scores,
        size_average: bool = True,
        normalize_scores: bool = True,
    ) -> None:
        super().__init__(model, score_metric)
        self.size_average = size_average
        self.normalize_scores = normalize_scores
        self.loss_function = torch.nn.KLDivLoss(
            reduction="batchmean" if size_average else "sum", log_target=True
        )

    def loss_from_batch(self, columns: Columns, masks: Masks, labels: Labels) -> Tensor:
        """``[queries (B rows), documents (B * n_ways rows, grouped by query)]``
        against the teacher scores ``labels`` ``(B, n_ways)``."""
        if labels is None:
            raise ValueError(
                "Distillation needs teacher scores: the dataset must have a 'scores' "
                "(or 'label') column with one score per document."
            )
        queries = embed(self.model, columns[0])
        documents = embed(self.model, columns[1])
        labels = torch.as_tensor(labels, device=queries.device)
        batch_size = queries.shape[0]
        if labels.dim() != 2 or labels.shape[0] != batch_size:
            raise ValueError(
                f"'scores' must have shape (batch_size={batch_size}, n_ways), got "
                f"{tuple(labels.shape)}."
            )
        n_ways = labels.shape[1]
        if documents.shape[0] != batch_size * n_ways:
            raise ValueError(
                f"Got {documents.shape[0]} documents for {batch_size} queries with "
                f"{n_ways} 'scores' each; every query needs exactly one document per "
                "teacher score."
            )
        length, dim = documents.shape[1], documents.shape[2]
        documents = documents.view(batch_size, n_ways, length, dim)
        documents_mask = masks[1].view(batch_size, n_ways, length)
        scores = self.score_metric(
            queries,
            documents,
            queries_mask=self.queries_mask(masks),
            documents_mask=documents_mask,
        )
        if self.normalize_scores:
            scores = minmax_normalize(scores)
        return self.loss_function(
            torch.log_softmax(scores, dim=-1),
            torch.log_softmax(labels.to(scores.dtype), dim=-1),
        )

    def get_config_dict(self) -> dict[str, Any]:
        """Hyper-parameters shown in the model card."""
        return {
            "size_average": self.size_average,
            "normalize_scores": self.normalize_scores,
        }
