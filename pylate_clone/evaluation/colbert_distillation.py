"""KL divergence between a ColBERT model's and a teacher's document distributions."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

from ..losses.distillation import minmax_normalize
from ..scores import colbert_kd_scores
from ..utils.tensor import pad_ragged
from ._common import RecordingEvaluator, encode_for_evaluation

logger = logging.getLogger(__name__)


class ColBERTDistillationEvaluator(RecordingEvaluator, BaseEvaluator):
    """KL(teacher || student) over each query's documents; lower is better.

    Parameters
    ----------
    queries
        ``n`` query texts.
    documents
        ``n`` lists of document texts, all of the same length ``m``.
    scores
        ``n`` lists of ``m`` teacher scores.
    name
        Prefix of the metric (``{name}_kl_divergence``) and CSV suffix.
    batch_size
        Encoding batch size.
    show_progress_bar
        Show tqdm bars while encoding.
    write_csv
        Append results to ``distillation_evaluation[_name]_results.csv``.
    truncate_dim
        Accepted for compatibility (not applied).
    normalize_scores
        Min-max normalise the student scores per query, as the loss does.
    """

    def __init__(
        self,
        queries: Sequence[str],
        documents: Sequence[Sequence[str]],
        scores: Sequence[Sequence[float]],
        name: str = "",
        batch_size: int = 16,
        show_progress_bar: bool = False,
        write_csv: bool = True,
        truncate_dim: int | None = None,
        normalize_scores: bool = True,
    ) -> None:
        super().__init__()
        if len(queries) != len(documents) or len(queries) != len(scores):
            raise ValueError(
                "queries, documents and scores must have the same length, got "
                f"{len(queries)}, {len(documents)} and {len(scores)}."
            )
        sizes = {len(group) for group in documents}
        if len(sizes) > 1:
            raise ValueError(
                f"Every query needs the same number of documents; got sizes {sorted(sizes)}."
            )
        for position, (group, teacher) in enumerate(zip(documents, scores)):
            if len(group) != len(teacher):
                raise ValueError(
                    f"Row {position}: {len(teacher)} 'scores' for {len(group)} 'documents'."
                )
        self.queries = list(queries)
        self.documents = [text for group in documents for text in group]
        self.n_documents = sizes.pop() if sizes else 0
        self.scores = [list(map(float, row)) for row in scores]
        self.name = name
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar
        self.write_csv = write_csv
        self.truncate_dim = truncate_dim
        self.normalize_scores = normalize_scores
        self.loss = torch.nn.KLDivLoss(reduction="batchmean", log_target=True)
        self.csv_file = (
            "distillation_evaluation" + (f"_{name}" if name else "") + "_results.csv"
        )
        self.csv_headers = ["epoch", "steps", "kl_divergence"]
        self.primary_metric = "kl_divergence"
        self.greater_is_better = False

    def _measure(
        self, model: Any, epoch: int, steps: int
    ) -> tuple[dict[str, float], list[float]]:
        """``{"[name_]kl_divergence": value}`` and the CSV values ``[value]``."""
        queries = pad_ragged(
            encode_for_evaluation(self, model, self.queries, is_query=True)
        )
        documents = pad_ragged(
            encode_for_evaluation(self, model, self.documents, is_query=False)
        ).to(queries)
        documents = documents.view(
            len(self.queries), self.n_documents, documents.shape[1], documents.shape[2]
        )
        with torch.no_grad():
            scores = colbert_kd_scores(queries, documents)
            if self.normalize_scores:
                scores = minmax_normalize(scores)
            teacher = torch.tensor(
                self.scores, dtype=scores.dtype, device=scores.device
            )
            kl = self.loss(
                torch.log_softmax(scores, dim=-1), torch.log_softmax(teacher, dim=-1)
            )
        value = float(kl)
        logger.info(f"Distillation KL divergence ({self.name or 'eval'}): {value:.6f}")
        metrics = self.prefix_name_to_metrics({"kl_divergence": value}, self.name)
        return metrics, [value]
