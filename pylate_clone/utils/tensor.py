"""Conversion of user inputs (lists, numpy arrays, tensors) to torch tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence


def convert_to_tensor(x: Any) -> torch.Tensor:
    """Convert an array-like of embeddings to a ``torch.Tensor``.

    Parameters
    ----------
    x
        A tensor (returned as is), a numpy array (shared memory, no copy), a list
        of tensors or arrays of equal shape (stacked), a list of ragged 2-D
        matrices (zero-padded to the longest, giving ``(n, L_max, H)``), or a
        nested list of numbers.

    Returns
    -------
    torch.Tensor
        The converted tensor.
    """
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            return convert_to_tensor(list(x))
        return torch.from_numpy(x)
    if isinstance(x, (list, tuple)):
        if len(x) == 0:
            return torch.empty(0)
        if all(isinstance(item, (torch.Tensor, np.ndarray)) for item in x):
            items = [convert_to_tensor(item) for item in x]
            shapes = {tuple(item.shape) for item in items}
            if len(shapes) == 1:
                return torch.stack(items)
            if all(item.dim() == 2 for item in items):
                return pad_sequence(items, batch_first=True, padding_value=0.0)
            raise ValueError(
                "Cannot convert a list of arrays with shapes "
                f"{sorted(shapes)[:4]} to one tensor: expected equal shapes or "
                "2-D matrices (n_tokens, dim)."
            )
        if all(isinstance(item, (list, tuple)) for item in x):
            return convert_to_tensor([convert_to_tensor(item) for item in x])
        return torch.tensor(x)
    return torch.as_tensor(x)
