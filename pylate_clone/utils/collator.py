"""Data collator for ColBERT training: queries and documents are tokenized differently."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from sentence_transformers.sentence_transformer.data_collator import (
    SentenceTransformerDataCollator,
)

logger = logging.getLogger(__name__)

DEFAULT_LABEL_COLUMNS = ["label", "scores"]


class ColBERTCollator(SentenceTransformerDataCollator):
    """Collate dataset rows into the tokenized batch the ColBERT losses consume.

    * Columns whose name contains ``"query"`` or ``"anchor"`` are tokenized as
      queries, every other text column as documents, always with ``pad=True`` so
      that queries have exactly ``query_length`` tokens and all document columns
      ``document_length`` tokens (the losses stack document columns).
    * A column holding lists of texts (distillation: the documents of a query) is
      flattened into one list, row after row.
    * The first label column found (``valid_label_columns``, default
      ``["label", "scores"]``) becomes ``batch["label"]``; columns whose name
      contains ``"_id"`` are skipped.
    * Output keys are ``"{column}_{key}"`` (``query_input_ids``,
      ``positive_attention_mask``, ...), which is what
      ``SentenceTransformerTrainer.collect_features`` splits on.

    Parameters
    ----------
    tokenize_fn
        ``model.tokenize``: ``(texts, is_query=..., pad=...) -> dict of tensors``.
    valid_label_columns
        Candidate label columns, first match wins.
    router_mapping
        ``{column: task}`` (or ``{dataset_name: {column: task}}``), passed to
        ``tokenize_fn`` as ``task``.
    prompts
        A prompt for every column (``str``), per column (``dict``) or per
        dataset and column (nested ``dict``); prepended to the texts.
    include_prompt_lengths
        Also emit ``"{column}_prompt_length"`` (token count of the prompt).
    all_special_ids
        Special token ids; a trailing one is not counted in prompt lengths.
    """

    def __init__(
        self,
        tokenize_fn: Callable,
        valid_label_columns: list[str] | None = None,
        router_mapping: dict | None = None,
        prompts: dict | str | None = None,
        include_prompt_lengths: bool = False,
        all_special_ids: set[int] | None = None,
        _prompt_length_mapping: dict | None = None,
        _warned_columns: set | None = None,
    ) -> None:
        self.tokenize_fn = tokenize_fn
        # Kept for sentence-transformers code that reads ``preprocess_fn``.
        self.preprocess_fn = tokenize_fn
        self.valid_label_columns = (
            list(valid_label_columns)
            if valid_label_columns is not None
            else list(DEFAULT_LABEL_COLUMNS)
        )
        self.router_mapping = router_mapping or {}
        self.prompts = prompts or {}
        self.max_length = None
        self.include_prompt_lengths = include_prompt_lengths
        self.all_special_ids = set(all_special_ids or ())
        self._prompt_length_mapping = (
            _prompt_length_mapping if _prompt_length_mapping is not None else {}
        )
        self._warned_columns = _warned_columns if _warned_columns is not None else set()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(tokenize_fn={self.tokenize_fn!r}, "
            f"valid_label_columns={self.valid_label_columns!r})"
        )

    def _tokenize(self, texts: list[str], is_query: bool, task: str | None) -> dict:
        if task is None:
            return self.tokenize_fn(texts, is_query=is_query, pad=True)
        return self.tokenize_fn(texts, is_query=is_query, pad=True, task=task)

    def _get_prompt_length(self, prompt: str, task: str | None = None) -> int:
        """Number of tokens ``prompt`` adds (a trailing special token excluded)."""
        key = (prompt, task)
        if key not in self._prompt_length_mapping:
            if task is None:
                tokenized = self.tokenize_fn([prompt])
            else:
                tokenized = self.tokenize_fn([prompt], task=task)
            ids = tokenized["input_ids"][0]
            length = (
                int(tokenized["attention_mask"][0].sum())
                if ("attention_mask" in tokenized)
                else len(ids)
            )
            last = int(ids[length - 1]) if length else None
            if last is not None and last in self.all_special_ids:
                length -= 1
            self._prompt_length_mapping[key] = length
        return self._prompt_length_mapping[key]

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Collate ``features`` (a list of dataset rows) into one batch dict.

        Parameters
        ----------
        features
            Rows sharing the same columns.

        Returns
        -------
        dict[str, Any]
            ``return_loss``, optional ``label`` (``(B, ...)`` tensor) and
            ``dataset_name``, and the tokenized ``"{column}_{key}"`` tensors:
            ``(B, query_length)`` for query columns, ``(B * n, document_length)``
            for document columns holding ``n`` texts per row.
        """
        if not features:
            raise ValueError("ColBERTCollator received an empty list of rows.")
        column_names = list(features[0].keys())
        batch: dict[str, Any] = {"return_loss": True}

        if "dataset_name" in column_names:
            column_names.remove("dataset_name")
            batch["dataset_name"] = features[0]["dataset_name"]

        if tuple(column_names) not in self._warned_columns:
            self.maybe_warn_about_column_order(column_names)

        for label_column in self.valid_label_columns:
            if label_column in column_names:
                values = [row[label_column] for row in features]
                if isinstance(values[0], torch.Tensor):
                    batch["label"] = torch.stack(values)
                else:
                    batch["label"] = torch.tensor(values)
                column_names.remove(label_column)
                break

        router_mapping = self._resolve_router_mapping(batch)
        prompts = self._resolve_prompts(batch)

        for column in column_names:
            if "_id" in column:
                continue
            texts = [row[column] for row in features]
            if texts and isinstance(texts[0], (list, tuple)):
                texts = [text for group in texts for text in group]
            bad = [text for text in texts if not isinstance(text, str)]
            if bad:
                raise ValueError(
                    f"Column {column!r} must hold texts (or lists of texts); found "
                    f"{type(bad[0]).__name__} values. Remove or rename non-text "
                    "columns (id columns must contain '_id')."
                )
            task = router_mapping.get(column)
            prompt = self._get_prompt_for_column(prompts, column) if prompts else None
            if prompt:
                texts = [prompt + text for text in texts]
                if self.include_prompt_lengths:
                    batch[f"{column}_prompt_length"] = torch.tensor(
                        self._get_prompt_length(prompt, task=task), dtype=torch.int
                    )
            is_query = "query" in column or "anchor" in column
            tokenized = self._tokenize(texts, is_query=is_query, task=task)
            for key, value in tokenized.items():
                batch[f"{column}_{key}"] = value
        return batch
