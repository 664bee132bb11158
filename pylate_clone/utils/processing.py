"""Knowledge-distillation preprocessing: resolve query / document ids to texts."""

from __future__ import annotations

import ast
import logging
from typing import Any

from .validation import check_int

logger = logging.getLogger(__name__)


def _select_split(data: Any, split: str, name: str) -> Any:
    """Return ``data[split]`` for a ``DatasetDict`` (or any mapping of splits)."""
    column_names = getattr(data, "column_names", None)
    if isinstance(column_names, dict):  # DatasetDict: {split: [columns]}
        if split not in data:
            raise KeyError(
                f"{name} has no split {split!r}; available splits: {list(data.keys())}."
            )
        return data[split]
    return data


def _require_columns(data: Any, columns: tuple[str, ...], name: str) -> None:
    available = list(getattr(data, "column_names", None) or [])
    missing = [column for column in columns if column not in available]
    if missing:
        raise ValueError(
            f"{name} is missing the column(s) {missing}; it has {available}."
        )


def _parse(value: Any) -> list:
    """Parse a list stored as its Python repr (``"[1, 2]"``), else return it as a list."""
    if isinstance(value, str):
        value = ast.literal_eval(value)
    return list(value)


class KDProcessing:
    """Turn distillation rows of ids into rows of texts, on the fly.

    Training rows hold ``query_id``, ``document_ids`` and the teacher ``scores``
    (one per document id). ``KDProcessing`` looks the ids up in the ``queries``
    (columns ``query_id``, ``text``) and ``documents`` (columns ``document_id``,
    ``text``) datasets, keeps the first ``n_ways`` documents, and adds the
    ``query`` and ``documents`` text columns that :class:`ColBERTCollator` and
    :class:`~pylate_clone.losses.Distillation` expect.

    Parameters
    ----------
    queries
        ``Dataset`` (or ``DatasetDict``, then ``queries[split]``) with columns
        ``query_id`` and ``text``.
    documents
        ``Dataset`` (or ``DatasetDict``) with columns ``document_id`` and ``text``.
    split
        Split to take from ``DatasetDict`` inputs.
    n_ways
        Number of documents (and scores) kept per query.

    Examples
    --------
    >>> from datasets import Dataset
    >>> queries = Dataset.from_list([{"query_id": 1, "text": "q"}])
    >>> documents = Dataset.from_list(
    ...     [{"document_id": 7, "text": "a"}, {"document_id": 8, "text": "b"}]
    ... )
    >>> kd = KDProcessing(queries, documents, n_ways=2)
    >>> kd.map({"query_id": 1, "document_ids": [8, 7], "scores": [0.5, 0.2]})
    {'scores': [0.5, 0.2], 'query': 'q', 'documents': ['b', 'a']}
    """

    def __init__(
        self, queries: Any, documents: Any, split: str = "train", n_ways: int = 32
    ) -> None:
        check_int("n_ways", n_ways)
        self.queries = _select_split(queries, split, "queries")
        self.documents = _select_split(documents, split, "documents")
        _require_columns(self.queries, ("query_id", "text"), "queries")
        _require_columns(self.documents, ("document_id", "text"), "documents")
        self.split = split
        self.n_ways = n_ways
        self._query_texts = list(self.queries["text"])
        self._document_texts = list(self.documents["text"])
        self.queries_index = {
            query_id: position
            for position, query_id in enumerate(self.queries["query_id"])
        }
        self.documents_index = {
            document_id: position
            for position, document_id in enumerate(self.documents["document_id"])
        }

    def _query_text(self, query_id: Any) -> str:
        try:
            return self._query_texts[self.queries_index[query_id]]
        except KeyError:
            raise KeyError(f"query_id {query_id!r} is not in the queries dataset.")

    def _document_text(self, document_id: Any) -> str:
        position = self.documents_index.get(document_id)
        if position is None:
            logger.warning(f"Unable to find document: {document_id}")
            return ""
        return self._document_texts[position]

    def _row(self, query_id: Any, document_ids: Any, scores: Any) -> tuple:
        document_ids = _parse(document_ids)[: self.n_ways]
        scores = _parse(scores)[: self.n_ways]
        if len(scores) != len(document_ids):
            raise ValueError(
                f"query_id {query_id!r}: 'scores' has {len(scores)} values but "
                f"'document_ids' has {len(document_ids)} (after keeping the first "
                f"n_ways={self.n_ways}); every document needs one teacher score."
            )
        documents = [self._document_text(doc_id) for doc_id in document_ids]
        return scores, self._query_text(query_id), documents

    @staticmethod
    def _check_example(example: dict) -> None:
        missing = [
            c for c in ("query_id", "document_ids", "scores") if c not in example
        ]
        if missing:
            raise ValueError(
                f"Distillation rows need the column(s) {missing}; got {list(example)}."
            )

    def transform(self, examples: dict) -> dict:
        """Batched transform for ``Dataset.set_transform``.

        Parameters
        ----------
        examples
            Columns ``query_id``, ``document_ids``, ``scores`` (lists over rows;
            list cells may be stored as their string repr).

        Returns
        -------
        dict
            ``examples`` with ``scores`` / ``document_ids`` parsed and truncated
            to ``n_ways`` and new ``query`` (``str`` per row) and ``documents``
            (``list[str]`` per row) columns.
        """
        self._check_example(examples)
        rows = [
            self._row(query_id, document_ids, scores)
            for query_id, document_ids, scores in zip(
                examples["query_id"], examples["document_ids"], examples["scores"]
            )
        ]
        examples["scores"] = [row[0] for row in rows]
        examples["document_ids"] = [
            _parse(ids)[: self.n_ways] for ids in examples["document_ids"]
        ]
        examples["query"] = [row[1] for row in rows]
        examples["documents"] = [row[2] for row in rows]
        return examples

    def map(self, example: dict) -> dict:
        """Per-row function for ``Dataset.map``.

        Parameters
        ----------
        example
            One row with ``query_id``, ``document_ids`` and ``scores``.

        Returns
        -------
        dict
            A new row with only ``scores``, ``query`` and ``documents``.
        """
        self._check_example(example)
        scores, query, documents = self._row(
            example["query_id"], example["document_ids"], example["scores"]
        )
        return {"scores": scores, "query": query, "documents": documents}
