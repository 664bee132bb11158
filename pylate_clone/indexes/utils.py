"""Input normalisation and validation shared by the indexes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from ..utils.tensor import float32_numpy as _to_numpy
from ..utils.tensor import reshape_embeddings as reshape_embeddings
from ..utils.validation import as_matrices as _as_matrices
from ..utils.validation import check_finite as _check_finite
from ..utils.validation import check_int
from .storage.idmap import DocumentId, describe_ids, normalize_ids


def np_dtype_for(dtype: Any) -> type | None:
    """numpy float type matching a torch/numpy float16/float32 dtype, else ``None``."""
    if dtype in (torch.float16, np.float16) or dtype == np.dtype(np.float16):
        return np.float16
    if dtype in (torch.float32, np.float32) or dtype == np.dtype(np.float32):
        return np.float32
    return None


def check_finite(
    items: Sequence[Any], name: str, labels: Sequence[Any] = (), start: int = 0
) -> None:
    """Raise ``ValueError`` naming the first item holding NaN or inf.

    ``labels`` (e.g. document ids) are quoted in the message; ``start`` is the
    position of ``items[0]`` in the argument. The check itself is
    :func:`pylate_clone.utils.validation.check_finite`.
    """
    if start:
        name = f"{name}[{start}:]"
    _check_finite(list(items), name, ids=list(labels) if len(labels) else None)


def as_matrices(
    embeddings: Any,
    name: str,
    dim: int | None = None,
    finite: bool = True,
) -> list:
    """Split and check ``embeddings`` into a list of 2-D ``(n_tokens, dim)`` items.

    The indexes' flavour of :func:`pylate_clone.utils.validation.as_matrices`:
    a list/tuple of matrices, a 3-D ``(n, L, dim)`` array/tensor or one 2-D
    matrix; ``(1, L, dim)`` items are squeezed; an empty batch or an item
    without token vectors is refused (an index can neither store nor search
    it). Items keep their type (tensor or numpy), no copy is made.

    Raises
    ------
    TypeError
        For a wrong kind (not a list/array/tensor, None, a string, not numeric).
    ValueError
        For a wrong value (empty, not 2-D, wrong dimension, NaN or inf).
    """
    return _as_matrices(embeddings, name, dim, finite, nonempty=True)


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
