"""Exact MaxSim of queries against their own ragged candidate lists (``rank.rerank``).

Semantics are PyLate's: a query's candidates are zero-padded to the longest
one without a mask, so a candidate shorter than the longest has each
per-query-token maximum floored at 0; an empty candidate scores 0.

On CPU the work runs on the fused numba kernel of :mod:`.maxsim_jit` (no
concatenation, no similarity matrix in memory) when numba imports, else on
the BLAS block kernel of :mod:`.maxsim` (candidates concatenated into blocks,
one matmul and a segment max per block). Either way the queries' candidate
chunks share one thread pool; the numba kernel releases the GIL, so one
worker prepares its candidates while the other computes.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .maxsim import _block_tokens, _blocks, _buffer, _Queries, _run


def maxsim_ragged_batch(
    queries: Sequence[torch.Tensor | np.ndarray],
    documents: Sequence[Sequence[torch.Tensor | np.ndarray]],
    *,
    num_threads: int | None = None,
    jit: bool | None = None,
) -> list[np.ndarray]:
    """MaxSim of each query against its own ragged candidates, PyLate-padded.

    PyLate zero-pads a query's candidates to the longest one without a mask,
    so a document shorter than the longest has each per-query-token maximum
    floored at 0; that is reproduced so scores are identical to PyLate's.
    Empty documents score 0.

    Parameters
    ----------
    queries
        ``Q`` non-empty matrices ``(Lq_i, D_i)``.
    documents
        Per query, ``n_i`` matrices ``(Ld_j, D_i)`` (tensors or arrays, any
        real dtype; computed in float32).
    num_threads
        Worker threads; None uses torch's thread count.
    jit
        ``None`` uses the fused numba kernel (:mod:`.maxsim_jit`) when numba
        imports and the torch block kernel otherwise; ``True`` requires the
        numba kernel, ``False`` forces the block kernel.

    Returns
    -------
    list[np.ndarray]
        Per query, ``(n_i,)`` float32 scores.

    Raises
    ------
    ValueError
        If a query is not a non-empty 2-D matrix or a document is not a
        ``(Ld, D)`` matrix of its query's dimension.
    ImportError
        If ``jit=True`` and numba is not installed.
    """
    kernel = _jit_kernel(required=bool(jit)) if jit is not False else None
    results = [np.zeros(len(docs), dtype=np.float32) for docs in documents]
    tasks: list[Callable[[], None]] = []
    flops = 0.0
    for i, (query, docs) in enumerate(zip(queries, documents)):
        lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        if len(docs) == 0 or lengths.max() == 0:
            continue
        pack = _Queries([query], int(query.shape[1]))
        flops += 2.0 * pack.columns * int(query.shape[1]) * lengths.sum()
        if kernel is not None:
            columns = _query_columns(pack)
            longest = int(lengths.max())
            # Chunks of candidates so that one long list still feeds every worker.
            total = int(lengths.sum())
            spans = (
                [(0, len(docs))]
                if total <= _JIT_CHUNK_TOKENS
                else _blocks(lengths, _JIT_CHUNK_TOKENS)
            )
            for a, b in spans:
                tasks.append(
                    _jit_task(
                        kernel,
                        columns,
                        pack.columns,
                        i,
                        docs,
                        (a, b),
                        longest,
                        results[i],
                    )
                )
            continue
        short = lengths < lengths.max()
        nonempty = np.flatnonzero(lengths > 0)
        for a, b in _blocks(lengths[nonempty], _block_tokens(pack.columns)):
            tasks.append(
                _ragged_task(pack, docs, nonempty[a:b], lengths, short, results[i])
            )
    if tasks:
        _run(tasks, flops, num_threads)
    return results


_FLOAT32 = np.dtype(np.float32)


_JIT_CHUNK_TOKENS = 1 << 14  # candidates' tokens per jit task
_jit_loaded: Any = None  # the compiled kernel, or False once it failed to load
_jit_error = ""
_jit_lock = threading.Lock()


def _jit_kernel(required: bool) -> Callable[..., None] | None:
    """The numba kernel, or None where it is not available.

    Imported and compiled (or loaded from numba's cache) on first use, under a
    lock: numba costs a second to import, so ``import pylate_clone`` does not
    pay it. A numba that imports but cannot build the kernel (an LLVM
    without these intrinsics) leaves the BLAS kernel in charge, with a warning.
    """
    global _jit_loaded
    with _jit_lock:
        if _jit_loaded is None:
            _jit_loaded = _load_jit()
    if _jit_loaded is False:
        if required:
            raise ImportError(
                f"maxsim_ragged_batch(jit=True) needs numba's kernel: {_jit_error}"
            )
        return None
    return _jit_loaded


def _load_jit() -> Any:
    global _jit_error
    try:
        from .maxsim_jit import ragged_maxsim

        # Compiles every path (or loads it from numba's on-disk cache) now.
        empty = np.zeros(0, dtype=np.int64)
        ragged_maxsim(
            np.zeros((1, 16), np.float32), 1, empty, empty, 0, np.zeros(0, np.float32)
        )
    except ImportError as error:
        _jit_error = f"numba is not installed ({error})."
        return False
    except Exception as error:  # noqa: BLE001 - any numba / LLVM build failure
        _jit_error = f"numba could not build it ({type(error).__name__}: {error})."
        warnings.warn(
            f"The fused MaxSim kernel is unavailable, using the BLAS kernel: "
            f"{_jit_error}",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return ragged_maxsim


def _query_columns(pack: _Queries) -> np.ndarray:
    """The query transposed to ``(D, S)``, ``S`` padded with zeros to 16 lanes."""
    (_, _, matrix, _) = pack.groups[0]
    length, dim = matrix.shape
    columns = np.zeros((dim, -(-length // 16) * 16), dtype=np.float32)
    columns[:, :length] = matrix.numpy().T
    return columns


def _as_float32_rows(
    doc: Any, dim: int, query: int, j: int
) -> np.ndarray | torch.Tensor:
    """``doc`` as a C-contiguous float32 CPU ``(L, dim)`` matrix (no copy if it is one).

    The jit kernel reads it by address: its shape is checked here, since a
    wrong one would read outside the buffer. (:func:`_addresses` takes the
    common case, a plain float32 array, without calling this.)
    """
    if isinstance(doc, np.ndarray):
        if doc.dtype != np.float32 or not doc.flags.c_contiguous:
            doc = np.ascontiguousarray(doc, dtype=np.float32)
    else:
        doc = torch.as_tensor(doc).detach()
        if doc.device.type != "cpu" or doc.dtype != torch.float32:
            doc = doc.to("cpu", torch.float32)
        doc = doc.contiguous()
    if doc.ndim != 2 or doc.shape[1] != dim:
        raise ValueError(
            f"documents[{query}][{j}] must be a (Ld, {dim}) matrix, got shape "
            f"{tuple(doc.shape)}."
        )
    return doc


def _address(doc: np.ndarray | torch.Tensor) -> int:
    if isinstance(doc, np.ndarray):
        if doc.flags.writeable:
            return torch.from_numpy(doc).data_ptr()  # faster than doc.ctypes.data
        return doc.ctypes.data  # torch would warn about a read-only array
    return doc.data_ptr()


def _jit_task(
    kernel: Callable[..., None],
    columns: np.ndarray,
    query_length: int,
    query: int,
    docs: Sequence[Any],
    span: tuple[int, int],
    longest: int,
    out: np.ndarray,
) -> Callable[[], None]:
    def run() -> None:
        a, b = span
        # `kept` holds converted copies alive while the kernel reads them.
        kept, addresses, lengths = _addresses(docs, a, b, columns.shape[0], query)
        kernel(columns, query_length, addresses, lengths, longest, out[a:b])
        del kept

    return run


def _addresses(
    docs: Sequence[Any], a: int, b: int, dim: int, query: int
) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Address and length of candidates ``a:b``, converting those that need it.

    Returns the converted copies (to keep alive), the addresses and lengths.
    A writable C-contiguous float32 ``(L, dim)`` array, the common case, is
    recognised by one inline test (this loop runs once per candidate).
    """
    kept: list[Any] = []
    addresses: list[int] = []
    lengths: list[int] = []
    from_numpy = torch.from_numpy
    for j in range(a, b):
        doc = docs[j]
        if (
            type(doc) is np.ndarray
            and doc.dtype is _FLOAT32
            and doc.ndim == 2
            and doc.shape[1] == dim
            and (flags := doc.flags).c_contiguous
            and flags.writeable
        ):
            addresses.append(from_numpy(doc).data_ptr())
            lengths.append(doc.shape[0])
            continue
        doc = _as_float32_rows(doc, dim, query, j)
        kept.append(doc)
        addresses.append(_address(doc))
        lengths.append(doc.shape[0])
    return kept, np.array(addresses, np.int64), np.array(lengths, np.int64)


def _ragged_task(
    pack: _Queries,
    docs: Sequence[Any],
    members: np.ndarray,
    lengths: np.ndarray,
    short: np.ndarray,
    out: np.ndarray,
) -> Callable[[], None]:
    def run() -> None:
        parts = [
            torch.from_numpy(d) if isinstance(d, np.ndarray) else d.detach().cpu()
            for d in (docs[j] for j in members)
        ]
        rows = int(lengths[members].sum())
        block = _buffer("block", rows, parts[0].shape[1])
        if all(p.dtype == torch.float32 for p in parts):
            torch.cat(parts, out=block)
        else:
            block.copy_(torch.cat(parts))
        local = np.zeros(len(members), dtype=np.intp)
        np.cumsum(lengths[members][:-1], out=local[1:])
        per_token = pack.per_token(block, local)  # (n, Lq)
        floored = short[members]
        if floored.any():
            per_token[floored] = np.maximum(per_token[floored], 0.0)
        out[members] = per_token.sum(axis=1)

    return run


def maxsim_ragged(
    query: torch.Tensor, documents: Sequence[torch.Tensor | np.ndarray]
) -> torch.Tensor:
    """MaxSim of one query against ragged documents, as if zero-padded together.

    Same semantics as :func:`maxsim_ragged_batch` (PyLate's padding floor).
    On CPU it runs the block kernel; on an accelerator one matmul over the
    concatenated documents and a segment max.

    Parameters
    ----------
    query
        ``(Lq, D)`` query token embeddings.
    documents
        ``n`` matrices ``(Ld_j, D)`` (tensors or numpy arrays).

    Returns
    -------
    torch.Tensor
        ``(n,)`` scores on the query's device, in the query's dtype.
    """
    if query.device.type == "cpu":
        (scores,) = maxsim_ragged_batch([query], [documents])
        return torch.from_numpy(scores).to(query.dtype)
    lengths = [len(d) for d in documents]
    if not lengths or max(lengths) == 0:
        return torch.zeros(len(lengths), dtype=query.dtype, device=query.device)
    stacked = torch.cat(
        [torch.as_tensor(d).to(query.device, query.dtype) for d in documents]
    )
    lengths_t = torch.tensor(lengths, device=query.device)
    per_token = torch.segment_reduce(
        stacked @ query.T, "max", lengths=lengths_t, axis=0, unsafe=True
    )
    per_token = torch.nan_to_num(per_token, neginf=0.0)  # empty documents
    short = lengths_t < max(lengths)
    per_token = torch.where(short[:, None], per_token.clamp_min(0.0), per_token)
    return per_token.sum(dim=1)
