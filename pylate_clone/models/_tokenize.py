"""ColBERT tokenization: the tokenizer changes made at load time, and ``tokenize``.

At load time the prefixes become tokens of the vocabulary (the embedding
matrix grows to match) and the pad token becomes the mask token, so that
query expansion pads with ``[MASK]``. At call time texts are tokenized with a
budget of ``length - 1`` and the prefix is inserted after ``[CLS]``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

logger = logging.getLogger(__name__)


def register_prefix_tokens(model: Any) -> None:
    """Add ``model``'s non-empty prefixes to the vocabulary; set ``*_prefix_id``."""
    prefixes = [p for p in (model.query_prefix, model.document_prefix) if p]
    tokenizer = model.tokenizer
    if prefixes:
        auto_model = model[0].auto_model
        try:
            auto_model.resize_token_embeddings(len(tokenizer))
            tokenizer.add_tokens(prefixes)
            auto_model.resize_token_embeddings(len(tokenizer))
        except NotImplementedError:
            logger.warning(
                "This backbone cannot resize its embeddings; prefix tokens %s were "
                "not added to the vocabulary.",
                prefixes,
            )
    model.query_prefix_id = (
        tokenizer.convert_tokens_to_ids(model.query_prefix)
        if model.query_prefix
        else None
    )
    model.document_prefix_id = (
        tokenizer.convert_tokens_to_ids(model.document_prefix)
        if model.document_prefix
        else None
    )


def override_pad_token(tokenizer: Any) -> None:
    """Pad with the mask token (else eos, else the pad token) so expansion uses it."""
    if tokenizer.mask_token_id is not None:
        tokenizer.pad_token_id = tokenizer.mask_token_id
    elif tokenizer.eos_token_id is not None:
        tokenizer.pad_token_id = tokenizer.eos_token_id
    elif tokenizer.pad_token_id is not None:
        logger.warning(
            "The tokenizer has no mask or eos token: queries are expanded with its pad token."
        )
    else:
        raise NotImplementedError(
            "The tokenizer has no mask, eos or pad token to expand queries with."
        )


def insert_prefix_token(input_ids: torch.Tensor, prefix_id: int) -> torch.Tensor:
    """Insert ``prefix_id`` as a new column at position 1: ``(B, L)`` → ``(B, L + 1)``."""
    column = torch.full(
        (input_ids.shape[0], 1),
        prefix_id,
        dtype=input_ids.dtype,
        device=input_ids.device,
    )
    return torch.cat([input_ids[:, :1], column, input_ids[:, 1:]], dim=1)


def text_columns(texts: Any, lower: bool) -> list[list[str]]:
    """Stripped (and lower-cased) text columns: one for strings, two for pairs."""
    if isinstance(texts, str):
        raise TypeError("tokenize expects a list of texts, not a single string.")
    texts = list(texts)
    if texts and isinstance(texts[0], dict):
        texts = [next(iter(item.values())) for item in texts]
    if texts and isinstance(texts[0], (tuple, list)):
        columns = [list(column) for column in zip(*texts)]
    else:
        columns = [texts]
    return [
        [str(text).strip().lower() if lower else str(text).strip() for text in column]
        for column in columns
    ]


def sequence_length(model: Any, is_query: bool) -> int:
    """Tokens the tokenizer may produce for one text: the budget minus the prefix."""
    max_length = model.query_length if is_query else model.document_length
    prefix_id = model.query_prefix_id if is_query else model.document_prefix_id
    return max_length - 1 if prefix_id is not None else max_length


def tokenize(
    model: Any, texts: Any, is_query: bool = True, pad: bool = False
) -> dict[str, torch.Tensor]:
    """Tokenize queries or documents the ColBERT way (see ``ColBERT.tokenize``).

    Returns
    -------
    dict[str, torch.Tensor]
        ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the
        tokenizer makes them), each ``(B, L)``.
    """
    prefix_id = model.query_prefix_id if is_query else model.document_prefix_id
    length = sequence_length(model, is_query)
    first = model[0]
    # PyLate reports the budget of the last call in max_seq_length (its parity
    # tests read it); the budget itself is computed above, never read back.
    if first.max_seq_length != length:
        first.max_seq_length = length
    padding: bool | str = (
        "max_length" if pad or (is_query and model.do_query_expansion) else True
    )
    columns = text_columns(texts, lower=getattr(first, "do_lower_case", False))
    features = dict(
        model.tokenizer(
            *columns,
            padding=padding,
            truncation="longest_first",
            max_length=length,
            return_tensors="pt",
        )
    )
    if prefix_id is not None:
        features["input_ids"] = insert_prefix_token(features["input_ids"], prefix_id)
        features["attention_mask"] = insert_prefix_token(features["attention_mask"], 1)
        if "token_type_ids" in features:
            features["token_type_ids"] = insert_prefix_token(
                features["token_type_ids"], 0
            )
    if is_query and model.attend_to_expansion_tokens:
        features["attention_mask"].fill_(1)
    return features
