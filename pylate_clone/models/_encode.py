"""``ColBERT.encode``: argument checks, the batch loop, and lists of lists.

Texts are sorted by length (so a batch pads little), encoded batch by batch,
and the per-text rows go back to the input order in :mod:`._encode_output`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.autonotebook import trange

from ..utils.validation import check_int
from ._encode_output import shape_full_output, shape_token_embeddings

OUTPUT_VALUES = ("token_embeddings", None)


@dataclass(frozen=True)
class EncodeOptions:
    """The checked arguments of one ``encode`` call, shared by every text group."""

    batch_size: int
    show_progress_bar: bool
    precision: str
    to_numpy: bool
    padding: bool
    device: str | None
    normalize: bool
    is_query: bool
    pool_factor: int
    protected_tokens: int
    token_embeddings_only: bool
    stack_groups: bool


def encode_options(
    *,
    batch_size: Any,
    show_progress_bar: bool,
    precision: str,
    convert_to_numpy: bool,
    convert_to_tensor: bool,
    padding: bool,
    device: str | None,
    normalize_embeddings: bool,
    is_query: bool,
    pool_factor: Any,
    protected_tokens: int,
    output_value: str | None,
) -> EncodeOptions:
    """Check ``encode``'s arguments and fold them into an :class:`EncodeOptions`."""
    if output_value not in OUTPUT_VALUES:
        raise ValueError(
            f"output_value must be 'token_embeddings' or None, got {output_value!r}."
        )
    check_int("pool_factor", pool_factor)
    if output_value is None and pool_factor > 1:
        raise ValueError("output_value=None cannot be combined with pool_factor > 1.")
    check_int("batch_size", batch_size)
    # convert_to_numpy=False means tensors, as convert_to_tensor=True does.
    to_tensor = convert_to_tensor or not convert_to_numpy
    return EncodeOptions(
        batch_size=batch_size,
        show_progress_bar=show_progress_bar,
        precision=precision,
        to_numpy=not to_tensor,
        padding=padding,
        device=device,
        normalize=normalize_embeddings,
        is_query=is_query,
        pool_factor=pool_factor,
        protected_tokens=protected_tokens,
        token_embeddings_only=output_value is not None,
        # Only an explicit convert_to_tensor stacks the groups (PyLate's rule).
        stack_groups=convert_to_tensor and output_value is not None,
    )


def encode_groups(
    model: Any, groups: list[list[str]], prompt: str | None, options: EncodeOptions
) -> list[Any]:
    """Encode each inner list separately (stacked ``(n, L, H)`` tensors if asked)."""
    results = []
    for group in groups:
        result = encode_texts(model, group, prompt, options)
        if options.stack_groups:
            result = torch.stack(result) if len(result) else torch.empty(0)
        results.append(result)
    return results


def encode_texts(
    model: Any, sentences: Any, prompt: str | None, options: EncodeOptions
) -> Any:
    """Encode a string or a list of strings; see ``ColBERT.encode`` for the output."""
    model.eval()
    single = isinstance(sentences, str) or not hasattr(sentences, "__len__")
    sentences = [sentences] if single else list(sentences)
    for i, sentence in enumerate(sentences):
        if not isinstance(sentence, str):
            raise TypeError(
                f"sentences[{i}] must be a string, got {type(sentence).__name__}."
            )
    if prompt:
        sentences = [prompt + sentence for sentence in sentences]
    if options.device is not None:
        model.to(options.device)

    order = np.argsort([-len(sentence) for sentence in sentences], kind="stable")
    embeddings, extras = _run_batches(model, [sentences[i] for i in order], options)
    inverse = np.argsort(order, kind="stable")
    if options.token_embeddings_only:
        output = shape_token_embeddings(embeddings, inverse, options)
        return output[0] if single else output
    output = shape_full_output(
        {"token_embeddings": embeddings, **extras},
        inverse,
        options,
        pad_token_id=model.tokenizer.pad_token_id,
    )
    return {key: value[0] for key, value in output.items()} if single else output


def _run_batches(
    model: Any, sentences: list[str], options: EncodeOptions
) -> tuple[list[torch.Tensor], dict[str, list[torch.Tensor]]]:
    """Per-text rows, in the order of ``sentences``, plus the full-output extras.

    With ``token_embeddings_only`` each row keeps the tokens of the default
    output (all of an expanded query; a document's non-padding, non-skiplist
    tokens), pooled if asked; otherwise rows hold every position and the
    extras carry ``input_ids``, ``attention_mask`` and ``masks``.
    """
    target_device = model.device
    label = "queries" if options.is_query else "documents"
    embeddings: list[torch.Tensor] = []
    extras: dict[str, list[torch.Tensor]] = {
        "input_ids": [],
        "attention_mask": [],
        "masks": [],
    }
    for start in trange(
        0,
        len(sentences),
        options.batch_size,
        desc=f"Encoding {label} (bs={options.batch_size})",
        disable=not options.show_progress_bar,
    ):
        batch = sentences[start : start + options.batch_size]
        features = model.tokenize(batch, is_query=options.is_query)
        features = {key: value.to(target_device) for key, value in features.items()}
        with torch.no_grad():
            token_embeddings = model.forward(features)["token_embeddings"]
            masks = _kept_tokens(model, features, options.is_query)
            if options.normalize:
                token_embeddings = torch.nn.functional.normalize(
                    token_embeddings, p=2, dim=-1
                )
            if options.to_numpy:
                token_embeddings = token_embeddings.cpu()
                masks = masks.cpu()
            if not options.token_embeddings_only:
                embeddings.extend(token_embeddings)
                extras["input_ids"].extend(features["input_ids"].cpu())
                extras["attention_mask"].extend(features["attention_mask"].cpu())
                extras["masks"].extend(masks.cpu())
                continue
            # One boolean gather for the batch, then views per text: per-row
            # indexing costs one small parallel op per text.
            counts = masks.sum(dim=1).tolist()
            rows = list(token_embeddings[masks].split(counts))
        if options.pool_factor > 1 and not options.is_query:
            rows = model.pool_embeddings_hierarchical(
                rows,
                pool_factor=options.pool_factor,
                protected_tokens=options.protected_tokens,
            )
        embeddings.extend(rows)
    return embeddings, extras


def _kept_tokens(
    model: Any, features: dict[str, torch.Tensor], is_query: bool
) -> torch.Tensor:
    """``(B, L)`` bool: the positions the default output keeps."""
    if is_query and model.do_query_expansion:
        return torch.ones_like(features["input_ids"], dtype=torch.bool)
    if is_query:
        return features["attention_mask"].bool()
    masks = model.skiplist_mask(features["input_ids"], model.skiplist)
    return masks & features["attention_mask"].bool()
