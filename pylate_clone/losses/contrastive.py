"""Contrastive (InfoNCE) loss over MaxSim scores with in-batch negatives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..scores import ColBERTScores
from ..utils.validation import check_int
from ._base import ColBERTLoss, check_temperature
from ._common import (
    Columns,
    Labels,
    Masks,
    chunked_scores,
    embed,
    extract_skiplist_mask,
    stack_documents,
)

__all__ = ["Contrastive", "extract_skiplist_mask"]


def contrastive_labels(
    batch_size: int, n_documents: int, offset: int, device: torch.device
) -> torch.Tensor:
    """Column of each query's positive in the query-major score matrix.

    Query ``i`` (global row ``offset + i``) has its positive at column
    ``(offset + i) * n_documents``.
    """
    return (torch.arange(batch_size, device=device) + offset) * n_documents


class Contrastive(ColBERTLoss):
    """Cross-entropy of each query's MaxSim scores against its positive document.

    The batch is ``[queries, positives, negatives_1, ...]``; every query is scored
    against *every* document of the batch (its positive, its own negatives and the
    documents of all other rows), so the other rows act as in-batch negatives, and
    any extra document column adds one hard negative per row.

    Parameters
    ----------
    model
        The :class:`~pylate_clone.models.ColBERT` model to train.
    score_metric
        Scorer ``(queries (Bq, Lq, H), documents (Bd, N, Ld, H), queries_mask,
        documents_mask) -> (Bq, Bd * N)``; defaults to
        :class:`~pylate_clone.scores.ColBERTScores`.
    score_mini_batch_size
        Score this many queries at a time (bounds the ``(Bq, Lq, Bd*N*Ld)``
        similarity tensor); ``None`` scores the whole batch at once.
    size_average
        Mean (``True``) or sum of the per-query losses.
    gather_across_devices
        In distributed training, all-gather the documents of every rank (with
        gradients) so each query also sees the other ranks' documents as
        negatives. The loss of a rank is the mean over its own queries; with DDP's
        gradient averaging, the resulting update equals a single-process step on
        the concatenated batch (not PyLate's; see the README's "Differences from
        PyLate").
    temperature
        Scores are divided by ``temperature`` before the softmax.

    Examples
    --------
    >>> from pylate_clone import losses, models  # doctest: +SKIP
    >>> model = models.ColBERT("sentence-transformers/all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> loss = losses.Contrastive(model, temperature=0.05)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: torch.nn.Module,
        score_metric: Callable | None = None,
        score_mini_batch_size: int | None = None,
        size_average: bool = True,
        gather_across_devices: bool = False,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(
            model, score_metric if score_metric is not None else ColBERTScores()
        )
        check_int("score_mini_batch_size", score_mini_batch_size, allow_none=True)
        check_temperature(temperature)
        self.score_mini_batch_size = score_mini_batch_size
        self.size_average = size_average
        self.gather_across_devices = gather_across_devices
        self.temperature = temperature

    def loss_from_batch(self, columns: Columns, masks: Masks, labels: Labels) -> Tensor:
        """Embed ``[queries, positives, negatives...]`` and compute the loss."""
        embeddings = [embed(self.model, features) for features in columns]
        return self.compute_loss(embeddings, masks)

    def compute_loss(
        self, embeddings: list[torch.Tensor], masks: list[torch.Tensor]
    ) -> torch.Tensor:
        """Loss from normalised embeddings ``(B, L, H)`` and bool masks ``(B, L)``."""
        queries = embeddings[0]
        documents, documents_mask, offset = stack_documents(
            embeddings[1:], masks[1:], self.gather_across_devices
        )
        queries_mask = self.queries_mask(masks)
        scores = torch.cat(
            [
                chunk
                for _, _, chunk in chunked_scores(
                    self.score_metric,
                    queries,
                    documents,
                    queries_mask,
                    documents_mask,
                    self.score_mini_batch_size,
                )
            ]
        )
        labels = contrastive_labels(
            queries.shape[0], documents.shape[1], offset, scores.device
        )
        return F.cross_entropy(
            scores / self.temperature,
            labels,
            reduction="mean" if self.size_average else "sum",
        )

    def get_config_dict(self) -> dict[str, Any]:
        """Hyper-parameters shown in the model card."""
        return {
            "score_metric": type(self.score_metric).__name__,
            "size_average": self.size_average,
            "gather_across_devices": self.gather_across_devices,
            "temperature": self.temperature,
        }

    @property
    def citation(self) -> str:
        """BibTeX of the ColBERT paper."""
        return COLBERT_CITATION


COLBERT_CITATION = """@inproceedings{khattab2020colbert,
    title={ColBERT: Efficient and Effective Passage Search via Contextualized Late Interaction over BERT},
    author={Khattab, Omar and Zaharia, Matei},
    booktitle={Proceedings of the 43rd International ACM SIGIR Conference on Research and Development in Information Retrieval},
    pages={39--48},
    year={2020}
}"""
