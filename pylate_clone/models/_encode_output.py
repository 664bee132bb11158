"""Shaping ``ColBERT.encode``'s output: input order, padding, precision, numpy.

The batch loop produces one tensor per text in length order; these functions
put them back in input order, zero-pad them to a common length when asked
(each item then is ``(1, L_max, H)``), quantise them and convert them to numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..utils.tensor import pad_ragged

# Padding value of each key of the full (output_value=None) output.
FULL_OUTPUT_PADDING = {
    "token_embeddings": 0.0,
    "attention_mask": 0,
    "masks": False,
}


def pad_items(
    values: list[torch.Tensor], value: float | int | bool
) -> list[torch.Tensor]:
    """Pad ``(L_i, ...)`` items to the longest: ``n`` items of ``(1, L_max, ...)``."""
    if not values:
        return values
    return list(pad_ragged(values, value=value).split(1, dim=0))


def to_numpy(values: list[torch.Tensor]) -> list[np.ndarray]:
    """CPU numpy copies (bfloat16, which numpy lacks, becomes float32)."""
    converted = []
    for value in values:
        if value.dtype == torch.bfloat16:
            value = value.float()
        converted.append(value.cpu().numpy())
    return converted


def _as_requested(values: list[torch.Tensor], to_numpy_arrays: bool) -> list[Any]:
    """Numpy arrays when asked, else the tensors as they are."""
    return to_numpy(values) if to_numpy_arrays else values


def shape_token_embeddings(
    embeddings: list[torch.Tensor], inverse: np.ndarray, options: Any
) -> list[Any]:
    """The default output: one ``(n_tokens, H)`` matrix per text, in input order.

    Parameters
    ----------
    embeddings
        Rows in length order.
    inverse
        ``inverse[i]`` is the position of input text ``i`` in ``embeddings``.
    options
        The call's ``EncodeOptions`` (``padding``, ``precision``, ``to_numpy``).
    """
    if options.padding:
        embeddings = pad_items(embeddings, 0.0)
    embeddings = [embeddings[i] for i in inverse]
    if options.precision != "float32":
        from sentence_transformers.util.quantization import quantize_embeddings

        quantized = quantize_embeddings(
            torch.stack([e.float().cpu() for e in embeddings]),
            precision=options.precision,
        )
        embeddings = [torch.from_numpy(row) for row in quantized]
    return _as_requested(embeddings, options.to_numpy)


def shape_full_output(
    values: dict[str, list[torch.Tensor]],
    inverse: np.ndarray,
    options: Any,
    pad_token_id: int,
) -> dict[str, list[Any]]:
    """The ``output_value=None`` output: per-text lists of every key, in input order."""
    padding_values = {**FULL_OUTPUT_PADDING, "input_ids": pad_token_id}
    output = {}
    for key, items in values.items():
        if options.padding:
            items = pad_items(items, padding_values[key])
        output[key] = _as_requested([items[i] for i in inverse], options.to_numpy)
    return output
