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
            return torch.empty(0, dtype=torch.float32)
        if all(isinstance(item, (torch.Tensor, np.ndarray)) for item in x):
            # PyLate builds float32 from numpy rows (float64 rows included);
            # tensors keep their dtype.
            items = [
                torch.from_numpy(np.asarray(item, dtype=np.float32))
                if isinstance(item, np.ndarray) and item.dtype != object
                else convert_to_tensor(item)
                for item in x
            ]
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
            # Nested lists of numbers are float32 rows, as in PyLate.
            nested = convert_to_tensor([convert_to_tensor(item) for item in x])
            return nested.to(torch.float32)
        return torch.tensor(x)
    return torch.as_tensor(x)


def float32_numpy(matrix: Any) -> np.ndarray:
    """A tensor or array-like as a float32 numpy array (a tensor is detached, on CPU)."""
    if isinstance(matrix, torch.Tensor):
        return matrix.detach().to("cpu", torch.float32).numpy()
    return np.asarray(matrix, dtype=np.float32)


def reshape_embeddings(embeddings: Any) -> Any:
    """PyLate's input helper: a 2-D matrix becomes a batch of one, tensors numpy.

    Parameters
    ----------
    embeddings
        A ``(L, H)`` or ``(n, L, H)`` numpy array or tensor, a list of tensors,
        or anything else.

    Returns
    -------
    Any
        A tensor is first moved to CPU float32 numpy; a 2-D array then gets a
        leading batch axis, ``(1, L, H)``; a list made only of tensors becomes a
        list of numpy arrays; any other input is returned unchanged.
    """
    if isinstance(embeddings, torch.Tensor):
        embeddings = float32_numpy(embeddings)
    if isinstance(embeddings, np.ndarray) and embeddings.ndim == 2:
        return embeddings[None]
    if isinstance(embeddings, list) and all(
        isinstance(e, torch.Tensor) for e in embeddings
    ):
        return [float32_numpy(e) for e in embeddings]
    return embeddings


def pad_dim(
    tensor: torch.Tensor, length: int, dim: int = 1, value: float = 0
) -> torch.Tensor:
    """Pad ``tensor`` along ``dim`` up to ``length`` with ``value`` (never truncates).

    Parameters
    ----------
    tensor
        Any tensor; e.g. ``(B, L, H)`` padded along the tokens (``dim=1``) or
        ``(n, ...)`` padded along the rows (``dim=0``).
    length
        Target size of ``dim``; a tensor already that long is returned as is.
    dim
        The dimension to pad.
    value
        Fill value of the new positions.

    Returns
    -------
    torch.Tensor
        ``tensor`` with ``dim`` of size ``max(length, tensor.shape[dim])``.
    """
    missing = length - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor, tensor.new_full(shape, value)], dim=dim)


def pad_ragged(
    matrices: list[Any], value: float = 0, length: int | None = None
) -> torch.Tensor:
    """Stack ragged ``(L_i, ...)`` items into one ``(n, L_max, ...)`` tensor.

    Parameters
    ----------
    matrices
        Tensors or arrays whose first dimension differs.
    value
        Fill value of the padding positions.
    length
        Pad to at least this many positions (default: the longest item).

    Returns
    -------
    torch.Tensor
        ``(n, max(L_max, length), ...)``.
    """
    padded = pad_sequence(
        [torch.as_tensor(m) for m in matrices], batch_first=True, padding_value=value
    )
    return padded if length is None else pad_dim(padded, length, dim=1, value=value)


def skiplist_mask(input_ids: torch.Tensor, skiplist: list[int]) -> torch.Tensor:
    """Boolean mask shaped like ``input_ids``: ``False`` where the id is in ``skiplist``."""
    if len(skiplist) == 0:
        return torch.ones_like(input_ids, dtype=torch.bool)
    skip = torch.as_tensor(skiplist, dtype=input_ids.dtype, device=input_ids.device)
    return ~torch.isin(input_ids, skip)
