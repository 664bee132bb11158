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
