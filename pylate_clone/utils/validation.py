"""The one place that checks user-supplied numbers: integer settings and embeddings.

Every public entry point that takes embeddings (``scores.*``, ``rank.rerank``,
the indexes, the retrievers) turns them into checked matrices here, so that a
bad value gets the same kind of error everywhere: it names the argument and the
position (``queries_embeddings[3]``, ``documents_embeddings[0][2]`` or a
document id), says what was expected and what came, and is a ``TypeError`` for
a wrong kind (``None``, a string, a boolean or object array) and a
``ValueError`` for a wrong value (a wrong shape or dimension, NaN or inf).

Checking costs one fast reduction per batch or item (no copy): per-item work is
limited to the shape and dtype look-ups a conversion needs anyway, and the
position of a non-finite value is searched for only once one was found.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

Matrix = np.ndarray | torch.Tensor

# numpy dtype kinds of real numbers: float, signed and unsigned integer.
_NUMERIC_KINDS = frozenset("fiu")


def check_int(name: str, value: Any, minimum: int = 1, allow_none: bool = False):
    """Return ``value`` as an ``int`` after checking it is an integer ``>= minimum``.

    Parameters
    ----------
    name
        Argument name used in the error message.
    value
        The value to check (booleans are refused).
    minimum
        Smallest accepted value.
    allow_none
        Accept (and return) ``None``.

    Raises
    ------
    ValueError
        ``"{name} must be an integer >= {minimum}, got {value!r}."`` (a
        ``ValueError`` for a wrong kind too: PyLate raises it for these settings).
    """
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or int(value) < minimum
    ):
        raise ValueError(
            f"{name} must be an integer >= {minimum}"
            + (" or None" if allow_none else "")
            + f", got {value!r}."
        )
    return int(value)


def _label(name: str, position: int | None, ids: Sequence[Any] | None) -> str:
    if position is None:
        return name
    label = f"{name}[{position}]"
    if ids is not None and position < len(ids):
        label += f" (document id {ids[position]!r})"
    return label


def check_numeric(value: Matrix, label: str) -> None:
    """Raise ``TypeError`` unless the array or tensor ``value`` holds numbers."""
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(
                f"{label} must hold real numbers, got a tensor of dtype {value.dtype}."
            )
        return
    kind = value.dtype.kind
    if kind not in _NUMERIC_KINDS:
        raise TypeError(
            f"{label} must hold real numbers, got an array of dtype {value.dtype}."
        )


def as_array(value: Any, label: str) -> Matrix:
    """``value`` as a numeric numpy array or tensor; ``TypeError`` names ``label``.

    Tensors and numpy arrays are returned as they are (no copy); nested lists
    of numbers become float32 arrays.
    """
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(
            f"{label} must be a matrix of numbers (tensor, numpy array or nested "
            f"list), got {type(value).__name__}."
        )
    if not isinstance(value, (np.ndarray, torch.Tensor)):
        try:
            value = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{label} must be a matrix of numbers, got {type(value).__name__} "
                f"that does not convert to one ({error})."
            ) from None
    check_numeric(value, label)
    return value


def is_plain_matrix(value: Any, dim: int) -> bool:
    """``True`` if ``value`` passes :func:`check_matrix` as it is: a 2-D float
    numpy array or floating-point tensor with last dimension ``dim``.

    A fast test for loops over thousands of candidates: they call
    :func:`check_matrix` (and build its label) only for items that fail it.
    """
    if type(value) is np.ndarray:
        return value.ndim == 2 and value.shape[1] == dim and value.dtype.kind == "f"
    return (
        isinstance(value, torch.Tensor)
        and value.ndim == 2
        and value.shape[1] == dim
        and value.is_floating_point()
    )


def check_matrix(
    value: Any, label: str, dim: int | None = None, squeeze: bool = True
) -> Matrix:
    """One checked ``(n_tokens, dim)`` matrix (finiteness is checked per batch).

    Parameters
    ----------
    value
        Tensor, numpy array or nested list of numbers.
    label
        How the error names it, e.g. ``"documents_embeddings[0][2]"``.
    dim
        Expected last dimension, or ``None`` for any.
    squeeze
        Accept a ``(1, n_tokens, dim)`` item (what ``encode(padding=True)``
        returns) and drop its leading axis.

    Returns
    -------
    numpy.ndarray | torch.Tensor
        The 2-D matrix, of the input's type (no copy for arrays and tensors).
    """
    matrix = as_array(value, label)
    if squeeze and matrix.ndim == 3 and matrix.shape[0] == 1:
        matrix = matrix[0]
    if matrix.ndim != 2:
        raise ValueError(
            f"{label} must be a 2-D (n_tokens, dim) matrix, got shape "
            f"{tuple(matrix.shape)}."
        )
    if dim is not None and matrix.shape[1] != dim:
        raise ValueError(f"{label} has dimension {matrix.shape[1]}, expected {dim}.")
    return matrix


def as_matrices(
    value: Any,
    name: str,
    dim: int | None = None,
    finite: bool = True,
    *,
    allow_single: bool = True,
    ids: Sequence[Any] | None = None,
    squeeze: bool = True,
    nonempty: bool = False,
) -> list[Matrix]:
    """Split and check a batch of per-item embedding matrices.

    Parameters
    ----------
    value
        A list or tuple of matrices (tensors, arrays or nested lists), a 3-D
        ``(n, L, dim)`` array or tensor, or (with ``allow_single``) one 2-D
        matrix meaning a batch of one.
    name
        Argument name for error messages; items are named ``name[i]``.
    dim
        Expected dimension of every item; ``None`` takes the first item's and
        requires the others to match it.
    finite
        Check that every value is finite (see :func:`check_finite`).
    allow_single
        Accept a lone 2-D matrix as one item.
    ids
        Document ids, quoted next to the position in error messages.
    squeeze
        Accept ``(1, L, dim)`` items (see :func:`check_matrix`).
    nonempty
        Refuse an empty batch and items without token vectors (what an index
        cannot store or search).

    Returns
    -------
    list[numpy.ndarray | torch.Tensor]
        ``n`` matrices ``(L_i, dim)`` of the input's types.
    """
    if isinstance(value, (np.ndarray, torch.Tensor)):
        check_numeric(value, name)
        if value.ndim == 2 and allow_single:
            items: list[Any] = [value]
        elif value.ndim == 3:
            items = list(value)
        else:
            expected = "a 2-D matrix or " if allow_single else ""
            raise ValueError(
                f"{name} must be {expected}a 3-D (n, n_tokens, dim) batch or a list "
                f"of (n_tokens, dim) matrices, got shape {tuple(value.shape)}."
            )
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise TypeError(
            f"{name} must be a list of (n_tokens, dim) matrices, a numpy array or "
            f"a tensor, got {type(value).__name__}."
        )
    if nonempty and not items:
        raise ValueError(f"{name} is empty: expected at least one matrix.")
    matrices = []
    for i, item in enumerate(items):
        matrix = check_matrix(item, _label(name, i, ids), dim=dim, squeeze=squeeze)
        if nonempty and matrix.shape[0] == 0:
            raise ValueError(
                f"{_label(name, i, ids)} has no token vectors: expected at least one."
            )
        dim = matrix.shape[1] if dim is None else dim
        matrices.append(matrix)
    if finite:
        check_finite(matrices, name, ids=ids)
    return matrices


def check_finite(
    values: Matrix | Sequence[Matrix],
    name: str,
    *,
    ids: Sequence[Any] | None = None,
    offsets: Sequence[int] | np.ndarray | None = None,
) -> None:
    """Raise ``ValueError`` naming the item if any value is NaN or infinite.

    Tensors that require grad are skipped (see ``_in_autograd``).

    Parameters
    ----------
    values
        One array or tensor (e.g. the concatenation a caller builds anyway,
        with ``offsets`` telling where each item starts), or a list of
        matrices (one reduction each, no copy).
    name
        Argument name for the message.
    ids
        Document ids quoted next to the position.
    offsets
        For a single concatenated ``(T, dim)`` ``values``: the ``(n + 1,)`` row
        offsets of its items, so the error names the item, not the row.
    """
    if isinstance(values, (np.ndarray, torch.Tensor)):
        if _in_autograd(values) or _maybe_finite(values):
            return
        row = _first_bad_row(values)
        if row is None:  # the reduction overflowed on large finite values
            return
        if offsets is None:
            position = row if values.ndim > 1 else None
            detail = ""
        else:
            position = int(np.searchsorted(np.asarray(offsets), row, side="right")) - 1
            detail = f" (token {row - int(offsets[position])})"
        raise ValueError(
            f"{_label(name, position, ids)}{detail} must hold finite numbers, "
            "got NaN or inf."
        )
    for position, value in enumerate(values):
        if _in_autograd(value) or _maybe_finite(value):
            continue
        if _first_bad_row(value) is not None:
            raise ValueError(
                f"{_label(name, position, ids)} must hold finite numbers, got NaN "
                "or inf."
            )


def _in_autograd(value: Matrix) -> bool:
    """A tensor that requires grad: a model output inside a training step.

    Such tensors are not checked: a NaN there is the trainer's to report (as in
    PyLate), and the check would add a device synchronisation to every step.
    """
    return isinstance(value, torch.Tensor) and value.requires_grad


def _maybe_finite(value: Matrix) -> bool:
    """One fast reduction: ``True`` proves every value finite.

    NaN and inf propagate through a sum (numpy: a BLAS dot product of the
    values with themselves), so a finite result means finite values; a
    non-finite result can also come from overflow of large finite values, so
    ``False`` is confirmed by :func:`_first_bad_row`. A sum or dot is several
    times faster than an ``isfinite`` mask.
    """
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            return True
        total = (
            value.sum()
            if value.dtype == torch.float64
            else value.sum(dtype=torch.float32)
        )
        return bool(torch.isfinite(total))
    if value.dtype.kind != "f":
        return True
    flat = value.reshape(-1)
    with np.errstate(over="ignore"):  # an overflow only sends us to the exact test
        if value.dtype in (np.float32, np.float64):
            return bool(np.isfinite(np.dot(flat, flat)))
        return bool(np.isfinite(flat.sum(dtype=np.float32)))


def _first_bad_row(value: Matrix) -> int | None:
    """Index of the first row (along axis 0) holding a NaN or inf, else ``None``."""
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point() or value.numel() == 0:
            return None
        bad = ~torch.isfinite(value)
        if value.ndim > 1:
            bad = bad.reshape(value.shape[0], -1).any(dim=1)
        rows = bad.nonzero()
        return int(rows[0, 0]) if len(rows) else None
    if value.dtype.kind != "f" or value.size == 0:
        return None
    bad = ~np.isfinite(value)
    if value.ndim > 1:
        bad = bad.reshape(value.shape[0], -1).any(axis=1)
    rows = np.flatnonzero(bad)
    return int(rows[0]) if len(rows) else None


def as_tensor(value: Any, name: str, ndim: int, finite: bool = True) -> torch.Tensor:
    """A checked ``ndim``-D tensor from a tensor, an array or a list of items.

    Parameters
    ----------
    value
        A tensor or array with ``ndim`` dimensions, or a list of
        ``ndim - 1``-dimensional items (tensors, arrays or nested lists) that
        are stacked (or zero-padded along their first axis when ragged 2-D).
    name
        Argument name; list items are named ``name[i]``.
    ndim
        Expected number of dimensions of the result.
    finite
        Check that every value is finite. Tensors that require grad (model
        outputs inside a training step) are not checked: a NaN there is the
        trainer's to report, as in PyLate.

    Returns
    -------
    torch.Tensor
        The tensor (shares memory with a numpy input).
    """
    from .tensor import convert_to_tensor

    if isinstance(value, np.ndarray) and value.dtype == object:
        value = list(value)  # a ragged batch numpy could only store as objects
    if isinstance(value, (list, tuple)):
        items = []
        for i, item in enumerate(value):
            array = as_array(item, f"{name}[{i}]")
            if array.ndim != ndim - 1:
                raise ValueError(
                    f"{name}[{i}] must have {ndim - 1} dimensions, got shape "
                    f"{tuple(array.shape)}."
                )
            items.append(array)
        tensor = convert_to_tensor(items)
    else:
        tensor = convert_to_tensor(as_array(value, name))
    if tensor.dim() != ndim:
        raise ValueError(
            f"{name} must have {ndim} dimensions, got shape {tuple(tensor.shape)}."
        )
    if finite:
        check_finite(tensor, name)
    return tensor
