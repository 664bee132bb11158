"""Input normalisation and validation shared by the indexes."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from ._idmap import DocumentId, describe_ids, normalize_ids


def np_dtype_for(dtype: Any) -> type | None:
    """numpy float type matching a torch/numpy float16/float32 dtype, else ``None``."""
    if dtype in (torch.float16, np.float16) or dtype == np.dtype(np.float16):
        return np.float16
    if dtype in (torch.float32, np.float32) or dtype == np.dtype(np.float32):
        return np.float32
    return None


def _to_numpy(matrix: Any) -> np.ndarray:
    if isinstance(matrix, torch.Tensor):
        return matrix.detach().to("cpu", torch.float32).numpy()
    return np.asarray(matrix, dtype=np.float32)


def reshape_embeddings(embeddings: Any) -> Any:
    """PyLate's helper: a 2-D array becomes a batch of one, tensors go to numpy.

    A 2-D numpy array gets a leading batch dimension; a tensor is moved to CPU
    numpy first; a list of tensors becomes a list of numpy arrays; anything else
    is returned unchanged.
    """
    if isinstance(embeddings, torch.Tensor):
        embeddings = _to_numpy(embeddings)
    if isinstance(embeddings, np.ndarray) and embeddings.ndim == 2:
        return embeddings[None]
    if isinstance(embeddings, list) and all(
        isinstance(e, torch.Tensor) for e in embeddings
    ):
        return [_to_numpy(e) for e in embeddings]
    return embeddings


def _item_matrix(item: Any, name: str, i: int) -> Any:
    """One item as a 2-D numeric tensor/array, or a named TypeError/ValueError."""
    if item is None:
        raise TypeError(f"{name}[{i}] is None; expected a (n_tokens, dim) matrix.")
    if isinstance(item, (str, bytes)):
        raise TypeError(
            f"{name}[{i}] is a {type(item).__name__}; expected a (n_tokens, dim) "
            "matrix of numbers (encode the text first)."
        )
    if isinstance(item, torch.Tensor):
        if item.is_complex() or item.dtype == torch.bool:
            raise TypeError(
                f"{name}[{i}] has dtype {item.dtype}; expected real numbers."
            )
    else:
        if not isinstance(item, np.ndarray):
            try:
                item = np.asarray(item, dtype=np.float32)
            except (TypeError, ValueError) as error:
                raise TypeError(
                    f"{name}[{i}] is not a matrix of numbers ({error})."
                ) from None
        if item.dtype.kind not in "fiu":
            raise TypeError(
                f"{name}[{i}] has dtype {item.dtype}; expected real numbers."
            )
    if item.ndim == 3 and item.shape[0] == 1:
        item = item[0]
    if item.ndim != 2:
        raise ValueError(
            f"{name}[{i}] must be a 2-D (n_tokens, dim) matrix, got shape "
            f"{tuple(item.shape)}."
        )
    if item.shape[0] == 0:
        raise ValueError(f"{name}[{i}] has no token vectors.")
    return item


def _all_finite(matrix: Any) -> bool:
    if isinstance(matrix, torch.Tensor):
        if matrix.device.type == "cpu" and matrix.dtype in (
            torch.float32,
            torch.float64,
        ):
            # numpy's check is several times faster than torch's on CPU.
            return bool(np.isfinite(matrix.detach().numpy()).all())
        return bool(torch.isfinite(matrix).all())
    if matrix.dtype.kind != "f":
        return True
    return bool(np.isfinite(matrix).all())


def check_finite(
    items: Sequence[Any], name: str, labels: Sequence[Any] = (), start: int = 0
) -> None:
    """Raise ``ValueError`` naming the first item holding NaN or inf.

    ``labels`` (e.g. document ids) are added to the message when given;
    ``start`` is the position of ``items[0]`` in the argument.
    """
    for i, item in enumerate(items):
        if not _all_finite(item):
            label = f" (id {labels[i]!r})" if i < len(labels) else ""
            raise ValueError(
                f"{name}[{start + i}]{label} holds NaN or infinite values; "
                "embeddings must be finite."
            )


def as_matrices(
    embeddings: Any,
    name: str,
    dim: int | None = None,
    finite: bool = True,
) -> list:
    """Split and validate ``embeddings`` into a list of 2-D ``(n_tokens, dim)`` items.

    This is the one embedding check of the indexes and the retriever. Accepts
    a list/tuple of matrices (tensors, arrays or nested lists), a 3-D
    array/tensor ``(n, L, dim)`` or a single 2-D matrix meaning one item.
    ``(1, L, dim)`` items are squeezed. Items keep their type (tensor or
    numpy) so no copy is made.

    Parameters
    ----------
    embeddings
        The value to check.
    name
        Argument name used in error messages (``queries_embeddings``...).
    dim
        Expected last dimension (the index's), or None to only require that
        all items agree.
    finite
        Also check for NaN / inf (one vectorised pass per item).

    Raises
    ------
    TypeError
        For a wrong kind: not a list/array/tensor, an item that is None, a
        string, or not numeric.
    ValueError
        For a wrong value: an empty batch, an item that is not 2-D, an empty
        item, mixed or unexpected dimensions, NaN or inf.
    """
    if isinstance(embeddings, (torch.Tensor, np.ndarray)):
        if embeddings.ndim == 2:
            items = [embeddings]
        elif embeddings.ndim == 3:
            items = list(embeddings)
        else:
            raise ValueError(
                f"{name} must be a list of (n_tokens, dim) matrices or a 3-D "
                f"array, got shape {tuple(embeddings.shape)}."
            )
    elif isinstance(embeddings, (list, tuple)):
        items = list(embeddings)
    else:
        raise TypeError(
            f"{name} must be a list of matrices, a numpy array or a tensor, got "
            f"{type(embeddings).__name__}."
        )
    if not items:
        raise ValueError(f"{name} is empty.")
    out = [_item_matrix(item, name, i) for i, item in enumerate(items)]
    dims = sorted({int(item.shape[1]) for item in out})
    if len(dims) > 1:
        raise ValueError(f"{name} mixes embedding dimensions {dims}.")
    if dim is not None and dims[0] != dim:
        first = next(i for i, item in enumerate(out) if item.shape[1] != dim)
        raise ValueError(
            f"{name}[{first}] has dimension {dims[0]} but the index holds "
            f"vectors of dimension {dim}."
        )
    if finite:
        check_finite(out, name)
    return out


def embedding_dim(matrices: Sequence[Any]) -> int:
    """Last dimension shared by validated matrices."""
    return int(matrices[0].shape[1])


def to_float32_numpy(matrix: Any) -> np.ndarray:
    """A C-contiguous float32 numpy copy/view of a tensor or array."""
    return np.ascontiguousarray(_to_numpy(matrix), dtype=np.float32)


def convert_embeddings_to_torch(embeddings: Any) -> list[torch.Tensor]:
    """List of CPU tensors from validated matrices (no copy for tensors)."""
    return [
        e.detach().cpu() if isinstance(e, torch.Tensor) else torch.from_numpy(e)
        for e in embeddings
    ]


def check_documents(
    documents_ids: Any,
    documents_embeddings: Any,
    dim: int | None = None,
    finite: bool = True,
) -> tuple[list[DocumentId], list]:
    """Validate an ``add_documents`` call: ids, matrices, lengths, duplicates.

    ``dim`` and ``finite`` are passed to :func:`as_matrices`; NaN/inf errors
    also name the document id.

    Returns
    -------
    tuple
        The normalised ids and the list of 2-D matrices.
    """
    ids = normalize_ids(documents_ids)
    if not ids:
        raise ValueError("documents_ids is empty: nothing to add.")
    matrices = as_matrices(documents_embeddings, "documents_embeddings", dim, False)
    if len(ids) != len(matrices):
        raise ValueError(
            f"Got {len(ids)} document ids but {len(matrices)} document embeddings; "
            "they must have one entry per document."
        )
    seen: set = set()
    repeated = []
    for document_id in ids:
        if document_id in seen:
            repeated.append(document_id)
        seen.add(document_id)
    if repeated:
        raise ValueError(
            f"documents_ids repeats ids within one call: {describe_ids(repeated)}."
        )
    if finite:
        check_finite(matrices, "documents_embeddings", ids)
    return ids, matrices


def per_query_subsets(subset: Any, n_queries: int) -> list[list[Any]] | None:
    """``subset`` as one list of ids per query (None: no restriction).

    A flat list (or one id) is shared by every query; a list of lists must
    hold one list per query. The same list object is repeated for a shared
    subset, so callers may cache per ``id()``.
    """
    if subset is None:
        return None
    if isinstance(subset, (str, int)):
        subset = [subset]
    subset = list(subset)
    if subset and all(isinstance(s, (list, tuple, set)) for s in subset):
        if len(subset) != n_queries:
            raise ValueError(
                f"subset has {len(subset)} lists but there are {n_queries} queries."
            )
        return [list(s) for s in subset]
    return [subset] * n_queries


def check_int(name: str, value: Any, minimum: int = 1, allow_none: bool = False):
    """Validate an integer parameter before it reaches a native library."""
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


def check_k(k: Any) -> int:
    """Validate the number of results requested."""
    return check_int("k", k, minimum=1)


def check_timeout(value: Any) -> float:
    """Validate a lock timeout in seconds (a number >= 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"lock_timeout must be a number >= 0, got {value!r}.")
    return float(value)


def as_batches(documents_ids: Any, documents_embeddings: Any) -> Iterable:
    """The ``(ids, embeddings)`` batches of an ``add_documents`` call.

    With embeddings: one batch. Without: ``documents_ids`` must be an
    iterable of ``(ids, embeddings)`` batches (a generator, say).
    """
    if documents_embeddings is not None:
        return [(documents_ids, documents_embeddings)]
    if isinstance(documents_ids, (str, bytes, int, np.ndarray, list, tuple)):
        raise TypeError(
            "documents_embeddings is missing: pass ids and embeddings, or one "
            "iterable of (ids, embeddings) batches."
        )
    try:
        return iter(documents_ids)
    except TypeError:
        raise TypeError(
            "documents_ids must be ids or an iterable of (ids, embeddings) "
            f"batches, got {type(documents_ids).__name__}."
        ) from None
