"""Triplet accuracy of a ColBERT model: is MaxSim(query, positive) > MaxSim(query, negative)?"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sentence_transformers.sentence_transformer.evaluation import TripletEvaluator

from ..scores import colbert_scores_pairwise
from ._common import (  # noqa: F401  (csv_writer: PyLate's import path)
    RecordingEvaluator,
    csv_writer,
    encode_for_evaluation,
    evaluation_message,
)

logger = logging.getLogger(__name__)


class ColBERTTripletEvaluator(RecordingEvaluator, TripletEvaluator):
    """Fraction of triplets where the positive outscores the negative (MaxSim).

    Parameters
    ----------
    anchors, positives, negatives
        Queries and their positive / negative documents (same length).
    name
        Suffix of the CSV file ``triplet_evaluation[_name]_results.csv``.
    batch_size
        Encoding batch size.
    show_progress_bar
        Show tqdm bars while encoding.
    write_csv
        Append results to the CSV file in ``output_path``.
    truncate_dim
        Accepted for compatibility; ColBERT embeddings are not truncated.

    Returns (when called) ``{"accuracy": float}``, not prefixed by ``name``.
    """

    def __init__(
        self,
        anchors: Sequence[str],
        positives: Sequence[str],
        negatives: Sequence[str],
        name: str = "",
        batch_size: int = 32,
        show_progress_bar: bool = False,
        write_csv: bool = True,
        truncate_dim: int | None = None,
    ) -> None:
        if not len(anchors) == len(positives) == len(negatives):
            raise ValueError(
                "anchors, positives and negatives must have the same length, got "
                f"{len(anchors)}, {len(positives)} and {len(negatives)}."
            )
        super().__init__(
            anchors=anchors,
            positives=positives,
            negatives=negatives,
            main_similarity_function=None,
            name=name,
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            write_csv=write_csv,
            truncate_dim=truncate_dim,
        )
        self.csv_headers = ["epoch", "steps", "accuracy"]
        self.metrics = ["accuracy"]
        self.primary_metric = "accuracy"

    def _measure(
        self, model: Any, epoch: int, steps: int
    ) -> tuple[dict[str, float], list[float]]:
        """Encode the triplets: ``{"accuracy": value}`` and the CSV values ``[value]``."""
        evaluation_message(epoch, steps, self.name, self.truncate_dim)
        anchors = encode_for_evaluation(self, model, self.anchors, is_query=True)
        positives = encode_for_evaluation(self, model, self.positives, is_query=False)
        negatives = encode_for_evaluation(self, model, self.negatives, is_query=False)
        positive_scores = colbert_scores_pairwise(anchors, positives)
        negative_scores = colbert_scores_pairwise(anchors, negatives)
        wins = int((positive_scores > negative_scores).sum())
        accuracy = wins / len(positive_scores)
        logger.info(f"Accuracy: \t{accuracy:.2f}")
        return {"accuracy": accuracy}, [accuracy]
