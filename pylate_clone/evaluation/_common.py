"""What the triplet and distillation evaluators share: encoding, logging, recording."""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)


def encode_for_evaluation(
    evaluator: Any, model: Any, texts: Sequence[str], is_query: bool
) -> list[Any]:
    """Encode ``texts`` with the evaluator's batch size and progress bar, as tensors.

    Returns
    -------
    list[torch.Tensor]
        One ``(n_tokens, H)`` tensor per text.
    """
    return model.encode(
        list(texts),
        is_query=is_query,
        convert_to_tensor=True,
        batch_size=evaluator.batch_size,
        show_progress_bar=evaluator.show_progress_bar,
    )


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


class RecordingEvaluator:
    """``__call__`` of the triplet and distillation evaluators: measure, then record.

    Mixed in before the sentence-transformers evaluator class, which provides
    ``write_csv``, ``csv_file``, ``csv_headers`` and
    ``store_metrics_in_model_card_data``; the evaluator implements
    :meth:`_measure`.
    """

    write_csv: bool
    csv_file: str
    csv_headers: list[str]

    def _measure(
        self, model: Any, epoch: int, steps: int
    ) -> tuple[dict[str, float], list[float]]:
        """The metrics of ``model`` and the values of its CSV row after epoch, steps."""
        raise NotImplementedError  # pragma: no cover - provided by the evaluator

    def __call__(
        self,
        model: Any,
        output_path: str | None = None,
        epoch: int = -1,
        steps: int = -1,
    ) -> dict[str, float]:
        """Evaluate ``model``: returns the metrics, also stored on its model card.

        With ``write_csv``, a row ``epoch, steps, values...`` is appended to
        the evaluator's CSV file in ``output_path``.
        """
        metrics, values = self._measure(model, epoch, steps)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        if output_path is not None and self.write_csv:
            os.makedirs(output_path, exist_ok=True)
            csv_writer(
                os.path.join(output_path, self.csv_file),
                [epoch, steps, *values],
                self.csv_headers,
            )
        return metrics


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
