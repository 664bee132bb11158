"""Triplet accuracy of a ColBERT model: is MaxSim(query, positive) > MaxSim(query, negative)?"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from typing import Any

from sentence_transformers.sentence_transformer.evaluation import TripletEvaluator

from ..scores import colbert_scores_pairwise

logger = logging.getLogger(__name__)


def csv_writer(path: str, data: list, header: list[str]) -> None:
    """Append ``data`` as one CSV row to ``path``, writing ``header`` first if new."""
    exists = os.path.isfile(path)
    with open(
        path, mode="a" if exists else "w", encoding="utf-8", newline=""
    ) as handle:
        writer = csv.writer(handle)
        if not exists:
            writer.writerow(header)
        writer.writerow(data)


def record_metrics(
    evaluator: Any,
    model: Any,
    metrics: dict[str, float],
    row: list,
    output_path: str | None,
    epoch: int,
    steps: int,
) -> None:
    """Store ``metrics`` on the model card and append ``row`` to the evaluator's CSV."""
    evaluator.store_metrics_in_model_card_data(model, metrics, epoch, steps)
    if output_path is not None and evaluator.write_csv:
        os.makedirs(output_path, exist_ok=True)
        csv_writer(
            os.path.join(output_path, evaluator.csv_file), row, evaluator.csv_headers
        )


def evaluation_message(
    epoch: int, steps: int, name: str, truncate_dim: int | None = None
) -> None:
    """Log which dataset / epoch / step is being evaluated."""
    if epoch != -1:
        suffix = (
            f" after epoch {epoch}"
            if steps == -1
            else f" in epoch {epoch} after {steps} steps"
        )
    else:
        suffix = ""
    if truncate_dim is not None:
        suffix += f" (truncated to {truncate_dim})"
    logger.info(
        f"TripletEvaluator: Evaluating the model on the {name} dataset{suffix}:"
    )


class ColBERTTripletEvaluator(TripletEvaluator):
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

    def __call__(
        self,
        model: Any,
        output_path: str | None = None,
        epoch: int = -1,
        steps: int = -1,
    ) -> dict[str, float]:
        """Encode the triplets and return ``{"accuracy": value}``."""
        evaluation_message(epoch, steps, self.name, self.truncate_dim)
        common = {
            "batch_size": self.batch_size,
            "show_progress_bar": self.show_progress_bar,
        }
        anchors = model.encode(
            list(self.anchors), is_query=True, convert_to_tensor=True, **common
        )
        positives = model.encode(
            list(self.positives), is_query=False, convert_to_tensor=True, **common
        )
        negatives = model.encode(
            list(self.negatives), is_query=False, convert_to_tensor=True, **common
        )
        positive_scores = colbert_scores_pairwise(anchors, positives)
        negative_scores = colbert_scores_pairwise(anchors, negatives)
        wins = int((positive_scores > negative_scores).sum())
        accuracy = wins / len(positive_scores)
        logger.info(f"Accuracy: \t{accuracy:.2f}")
        metrics = {"accuracy": accuracy}
        record_metrics(
            self, model, metrics, [epoch, steps, accuracy], output_path, epoch, steps
        )
        return metrics
