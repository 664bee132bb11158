"""Information-retrieval evaluator for ColBERT models (exhaustive MaxSim search)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from sentence_transformers.sentence_transformer.evaluation import (
    InformationRetrievalEvaluator,
)
from tqdm import trange

from ..scores import colbert_scores
from ..utils.tensor import pad_ragged

logger = logging.getLogger(__name__)

# Largest query-token x document-token similarity block scored at once (floats).
_MAX_BLOCK_ELEMENTS = 2**26


def pad_embeddings(
    embeddings: Sequence[torch.Tensor], length: int | None = None
) -> torch.Tensor:
    """Zero-pad ``n`` token matrices ``(L_i, H)`` into ``(n, max(L_i) or length, H)``."""
    return pad_ragged(embeddings, length=length)


def score_blocks(
    score_function: Callable,
    queries: torch.Tensor,
    documents: Sequence[torch.Tensor],
    max_elements: int = _MAX_BLOCK_ELEMENTS,
) -> torch.Tensor:
    """All-pairs scores ``(n_queries, n_documents)`` with bounded memory.

    Documents are zero-padded to their common maximum length (unmasked, as
    PyLate's evaluator does) and scored in blocks so that no similarity tensor
    exceeds ``max_elements`` floats.
    """
    length = max(doc.shape[0] for doc in documents)
    n_queries, query_length = queries.shape[0], queries.shape[1]
    per_document = max(n_queries * query_length * length, 1)
    block = max(1, max_elements // per_document)
    query_block = (
        n_queries if block > 1 else max(1, max_elements // (query_length * length))
    )
    columns = []
    for start in range(0, len(documents), block):
        docs = pad_embeddings(documents[start : start + block], length).to(queries)
        rows = [
            score_function(queries[q : q + query_block], docs)
            for q in range(0, n_queries, query_block)
        ]
        columns.append(torch.cat(rows))
    return torch.cat(columns, dim=1)


class PyLateInformationRetrievalEvaluator(InformationRetrievalEvaluator):
    """:class:`~sentence_transformers.sentence_transformer.evaluation.InformationRetrievalEvaluator`
    for ColBERT: queries and documents are encoded as token matrices and every
    document is scored with MaxSim (exhaustive search, no index).

    The constructor is sentence-transformers'. Metrics are returned as
    ``"{name}_MaxSim_{metric}@{k}"`` (``MaxSim_ndcg@10``, ``MaxSim_mrr@10``,
    ``MaxSim_recall@10``, ...); the primary metric is ``MaxSim_ndcg@10``.

    Examples
    --------
    >>> from pylate_clone import evaluation  # doctest: +SKIP
    >>> evaluator = evaluation.PyLateInformationRetrievalEvaluator(
    ...     queries={"q1": "what is colbert"},
    ...     corpus={"d1": "ColBERT is a late-interaction model", "d2": "bread"},
    ...     relevant_docs={"q1": {"d1"}},
    ... )  # doctest: +SKIP
    >>> evaluator(model)["MaxSim_ndcg@10"]  # doctest: +SKIP
    1.0
    """

    def _model_score_functions(self, model: Any) -> dict[str, Callable]:
        name = getattr(model, "similarity_fn_name", None) or "MaxSim"
        if str(name) == "MaxSim":
            return {"MaxSim": colbert_scores}
        return {str(name): model.similarity}

    def _encode(
        self, model: Any, texts: list[str], is_query: bool, **kwargs: Any
    ) -> list:
        return model.encode(
            texts,
            batch_size=self.batch_size,
            is_query=is_query,
            convert_to_tensor=True,
            **kwargs,
        )

    def compute_all_metrics(
        self,
        model: Any,
        corpus_model: Any = None,
        corpus_embeddings: Sequence[torch.Tensor] | None = None,
        output_path: str | None = None,
    ) -> dict[str, dict]:
        """Encode, search exhaustively with MaxSim, and compute the IR metrics.

        Parameters
        ----------
        model
            ColBERT model encoding the queries (and the corpus by default).
        corpus_model
            Model encoding the corpus, if different.
        corpus_embeddings
            Pre-computed document token embeddings ``[(L_i, H)]``, in corpus order.
        output_path
            Folder for the predictions file (``write_predictions=True``).

        Returns
        -------
        dict[str, dict]
            ``{score_function_name: {"accuracy@k": {k: v}, "ndcg@k": ..., ...}}``.
        """
        if corpus_model is None:
            corpus_model = model
        max_k = max(
            max(self.mrr_at_k),
            max(self.ndcg_at_k),
            max(self.accuracy_at_k),
            max(self.precision_recall_at_k),
            max(self.map_at_k),
        )
        query_embeddings = pad_embeddings(
            self._encode(
                model,
                self.queries,
                is_query=True,
                prompt_name=self.query_prompt_name,
                prompt=self.query_prompt,
                show_progress_bar=self.show_progress_bar,
            )
        )
        hits: dict[str, list[list[tuple[float, str]]]] = {
            name: [[] for _ in self.queries] for name in self.score_functions
        }
        for start in trange(
            0,
            len(self.corpus),
            self.corpus_chunk_size,
            desc="Corpus Chunks",
            disable=not self.show_progress_bar,
        ):
            end = min(start + self.corpus_chunk_size, len(self.corpus))
            if corpus_embeddings is None:
                chunk = self._encode(
                    corpus_model,
                    self.corpus[start:end],
                    is_query=False,
                    prompt_name=self.corpus_prompt_name,
                    prompt=self.corpus_prompt,
                    show_progress_bar=self.show_progress_bar,
                )
            else:
                chunk = corpus_embeddings[start:end]
            chunk = [torch.as_tensor(doc) for doc in chunk]
            for name, score_function in self.score_functions.items():
                scores = score_blocks(score_function, query_embeddings, chunk)
                top_k = min(max_k, scores.shape[1])
                values, indices = torch.topk(scores, top_k, dim=1, sorted=False)
                for query_index, (row_values, row_indices) in enumerate(
                    zip(values.tolist(), indices.tolist())
                ):
                    query_hits = hits[name][query_index]
                    query_hits.extend(
                        (score, self.corpus_ids[start + index])
                        for score, index in zip(row_values, row_indices)
                    )
                    query_hits.sort(key=lambda hit: (-hit[0], hit[1]))
                    del query_hits[max_k:]

        results = {
            name: [
                [{"corpus_id": corpus_id, "score": score} for score, corpus_id in query]
                for query in per_query
            ]
            for name, per_query in hits.items()
        }
        if self.write_predictions and output_path is not None:
            self._write_predictions(results, output_path)

        logger.info(f"Queries: {len(self.queries)}")
        logger.info(f"Corpus: {len(self.corpus)}\n")
        scores = {name: self.compute_metrics(results[name]) for name in results}
        for name in self.score_function_names:
            logger.info(f"Score-Function: {name}")
            self.output_scores(scores[name])
        return scores

    compute_metrices = compute_all_metrics

    def _write_predictions(self, results: dict[str, list], output_path: str) -> None:
        os.makedirs(output_path, exist_ok=True)
        for name, per_query in results.items():
            path = os.path.join(
                output_path, self.predictions_file.replace(".jsonl", f"_{name}.jsonl")
            )
            with open(path, "w", encoding="utf-8") as handle:
                for query_id, query, ranked in zip(
                    self.queries_ids, self.queries, per_query
                ):
                    record = {"query_id": query_id, "query": query, "results": ranked}
                    handle.write(json.dumps(record) + "\n")
