"""The opening every ColBERT loss shares: checks, feature columns, token masks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from ._common import (
    Columns,
    Labels,
    Masks,
    check_features,
    extract_skiplist_mask,
    model_attribute,
)


def check_temperature(temperature: Any) -> None:
    """Raise ``ValueError`` unless ``temperature`` is a number > 0."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}.")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}.")


class ColBERTLoss(torch.nn.Module):
    """Base of the ColBERT losses: holds the model and the scorer, opens ``forward``.

    Parameters
    ----------
    model
        The ``ColBERT`` model being trained (possibly wrapped by DDP or
        ``torch.compile``).
    score_metric
        The scorer the loss calls on token embeddings.
    """

    def __init__(self, model: torch.nn.Module, score_metric: Callable) -> None:
        super().__init__()
        self.model = model
        self.score_metric = score_metric

    def forward(
        self,
        sentence_features: Iterable[dict[str, torch.Tensor]],
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Compute the loss of one batch.

        Parameters
        ----------
        sentence_features
            Tokenized columns, queries first then documents (``input_ids`` and
            ``attention_mask`` of shape ``(B_i, L_i)``); see each loss for the
            columns it expects.
        labels
            Ignored by the contrastive losses (row ``i``'s positive is its own
            first document); the teacher scores ``(B, n_ways)`` for
            ``Distillation``.

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        sentence_features, masks = self.open_batch(sentence_features)
        return self.loss_from_batch(sentence_features, masks, labels)

    def loss_from_batch(self, columns: Columns, masks: Masks, labels: Labels) -> Tensor:
        """The loss, given the checked columns and their token masks."""
        raise NotImplementedError

    def open_batch(
        self, sentence_features: Iterable[dict[str, torch.Tensor]]
    ) -> tuple[list[dict[str, torch.Tensor]], list[torch.Tensor]]:
        """Check the columns (queries first, then documents) and build their masks.

        Returns
        -------
        tuple
            The feature columns as a list, and one ``(B, L)`` bool mask per
            column: the attention mask for queries, attention AND skiplist for
            documents.
        """
        sentence_features = list(sentence_features)
        check_features(sentence_features, 2, type(self).__name__)
        masks = extract_skiplist_mask(
            sentence_features, model_attribute(self.model, "skiplist")
        )
        return sentence_features, masks

    def queries_mask(self, masks: list[torch.Tensor]) -> torch.Tensor | None:
        """The mask MaxSim applies to queries: none with query expansion (every
        position, expansion tokens included, scores), else their attention mask."""
        if model_attribute(self.model, "do_query_expansion"):
            return None
        return masks[0]
