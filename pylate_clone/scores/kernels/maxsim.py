"""Exact MaxSim kernels over token stores (exact search and reranking).

A collection is stored as one ``(T, D)`` matrix of token vectors (float16 or
float32, possibly memory-mapped) plus document offsets ``(N + 1,)``: document
``j`` owns rows ``offsets[j]:offsets[j + 1]``. This module scores queries
against such a store without padding; its blocks, query packing and thread
pool also serve the ragged candidate lists of ``rank.rerank`` (:mod:`.ragged`).

Interface contract (used by the indexes; keep it stable):

``maxsim_flat(queries, tokens, offsets, rows=None) -> (Q, n) float32``
    ``queries``: a list of ``(Lq_i, D)`` float32 matrices or a ``(Q, Lq, D)``
    array. ``rows``: int64 document numbers to score (default: all ``N``), in
    the order of the output columns. The score of a document is
    ``sum_i max_t <q_i, d_t>`` over its real tokens; a document with no tokens
    scores 0. Accumulation is float32 whatever the storage dtype.

How it is fast: documents are cut into blocks of consecutive rows of a few
thousand tokens; each block is converted once to float32 (torch's vectorised
half-to-float, ~20x faster than numpy's cast), multiplied by the tokens of
ALL queries at once (one ``(t, D) @ (D, C)`` matmul per group of query
columns, which keeps the matmul wide), reduced per document with
``np.maximum.reduceat`` and per query with ``np.add.reduceat``. Blocks run on
a small thread pool with one torch thread per worker: torch and numpy release
the GIL, and independent single-threaded blocks scale better on a busy
machine than one multi-threaded matmul whose threads wait on each other.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from ...utils.threads import one_torch_thread, outer_num_threads

# A read-only memory map is only ever read here; torch's warning about
# non-writable arrays would otherwise reach the user once per process.
warnings.filterwarnings(
    "ignore",
    message="The given NumPy array is not writable",
    category=UserWarning,
    module=__name__,
)

_MAX_COLUMNS = 512  # query columns per matmul: wide enough, sims stay in cache
_BLOCK_BYTES = 1 << 20  # float32 bytes of one block's similarity matrix
_MIN_BLOCK, _MAX_BLOCK = 1024, 4096  # tokens per block: a block + its sims fit L2
_PARALLEL_FLOPS = 1 << 24  # below this a thread pool costs more than it saves

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_local = threading.local()


def _buffer(name: str, rows: int, cols: int) -> torch.Tensor:
    """A float32 ``(rows, cols)`` scratch tensor owned by the calling thread.

    Reused across blocks and calls: a fresh multi-megabyte tensor per block
    costs page faults comparable to the block's matmul.
    """
    buffers = _local.__dict__.setdefault("buffers", {})
    buf = buffers.get(name)
    if buf is None or len(buf) < rows * cols:
        buf = torch.empty(max(rows * cols, 1 << 18), dtype=torch.float32)
        buffers[name] = buf
    return buf[: rows * cols].view(rows, cols)


def _run(tasks: list[Callable[[], None]], flops: float, workers: int | None) -> None:
    """Run independent tasks, on the shared thread pool when the work is worth it."""
    global _pool
    if workers is None:
        workers = min(outer_num_threads(), os.cpu_count() or 1)
    workers = max(1, min(workers, len(tasks)))
    # Each worker runs single-threaded matmuls; torch's own intra-op threads
    # would only compete with them.
    with one_torch_thread():
        if workers == 1 or flops < _PARALLEL_FLOPS:
            for task in tasks:
                task()
            return
        with _pool_lock:
            if _pool is None or _pool._max_workers < workers:
                _pool = ThreadPoolExecutor(
                    max_workers=max(workers, os.cpu_count() or 1)
                )
            pool = _pool
        queue = iter(tasks)  # next() on a list iterator is atomic under the GIL

        def drain() -> None:
            for task in queue:
                task()

        for future in [pool.submit(drain) for _ in range(workers)]:
            future.result()


def _block_tokens(columns: int) -> int:
    return int(np.clip(_BLOCK_BYTES // (4 * max(columns, 1)), _MIN_BLOCK, _MAX_BLOCK))


def _blocks(lengths: np.ndarray, block_tokens: int) -> list[tuple[int, int]]:
    """Cut consecutive items into ``[a, b)`` ranges of about ``block_tokens`` tokens."""
    ends = np.cumsum(lengths)
    cuts = np.searchsorted(
        ends, np.arange(block_tokens, ends[-1] if len(ends) else 0, block_tokens)
    )
    bounds = np.unique(np.concatenate([[0], cuts + 1, [len(lengths)]]))
    bounds = bounds[bounds <= len(lengths)]
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


class _Queries:
    """Query tokens packed as float32 ``(D, C)`` column groups.

    ``groups`` holds ``(first query, last query + 1, matrix (D, c), starts)``
    where ``starts`` are each query's first column inside the group.
    """

    def __init__(self, queries: Sequence[Any] | np.ndarray, dim: int) -> None:
        mats = []
        for i, query in enumerate(queries):
            q = torch.as_tensor(
                np.asarray(query) if not torch.is_tensor(query) else query
            )
            if q.ndim != 2 or q.shape[1] != dim or q.shape[0] == 0:
                raise ValueError(
                    f"queries[{i}] must be a non-empty (Lq, {dim}) matrix, got shape "
                    f"{tuple(q.shape)}."
                )
            mats.append(q.detach().to("cpu", torch.float32))
        self.count = len(mats)
        self.columns = sum(len(q) for q in mats)
        self.groups: list[tuple[int, int, torch.Tensor, np.ndarray]] = []
        first = 0
        while first < len(mats):
            last, width = first, 0
            while last < len(mats) and (
                width == 0 or width + len(mats[last]) <= _MAX_COLUMNS
            ):
                width += len(mats[last])
                last += 1
            lengths = [len(q) for q in mats[first:last]]
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
            matrix = torch.cat(mats[first:last])  # (c, D): sims come out (c, t)
            self.groups.append((first, last, matrix, starts))
            first = last

    def score(self, block: torch.Tensor, doc_starts: np.ndarray) -> np.ndarray:
        """``(Q, n)`` MaxSim of the documents of ``block`` ``(t, D)`` float32.

        ``doc_starts`` ``(n,)``: first row of each (non-empty) document.
        """
        out = np.empty((self.count, len(doc_starts)), dtype=np.float32)
        for first, last, matrix, starts in self.groups:
            # (c, t) layout: the segment max then runs along contiguous rows,
            # several times faster than down the columns of a (t, c) matrix.
            sims = _buffer("sims", len(matrix), len(block))
            sims = torch.mm(matrix, block.T, out=sims).numpy()  # (c, t)
            per_token = np.maximum.reduceat(sims, doc_starts, axis=1)  # (c, n)
            out[first:last] = np.add.reduceat(per_token, starts, axis=0)
        return out

    def per_token(self, block: torch.Tensor, doc_starts: np.ndarray) -> np.ndarray:
        """``(n, C)`` per-query-token maxima (one group only: rerank's single query)."""
        (_, _, matrix, _) = self.groups[0]
        sims = torch.mm(matrix, block.T, out=_buffer("sims", len(matrix), len(block)))
        return np.maximum.reduceat(sims.numpy(), doc_starts, axis=1).T


def _as_queries(queries: Sequence[Any] | np.ndarray) -> Sequence[Any]:
    if isinstance(queries, (np.ndarray, torch.Tensor)) and queries.ndim == 2:
        raise ValueError(
            "queries must be a list of (Lq, D) matrices or a (Q, Lq, D) array; "
            "wrap a single query in a list."
        )
    return queries


def maxsim_flat(
    queries: Sequence[np.ndarray] | np.ndarray,
    tokens: np.ndarray,
    offsets: np.ndarray,
    rows: np.ndarray | None = None,
    *,
    num_threads: int | None = None,
) -> np.ndarray:
    """MaxSim of every query against documents of a flat token store.

    Parameters
    ----------
    queries
        ``(Q, Lq, D)`` array or a list of ``(Lq_i, D)`` matrices.
    tokens
        ``(T, D)`` token vectors (float16 or float32, may be a memory map),
        document after document.
    offsets
        ``(N + 1,)`` int64 row offsets into ``tokens``.
    rows
        Document numbers to score, shape ``(n,)``; None scores all ``N``.
    num_threads
        Worker threads; None uses torch's thread count.

    Returns
    -------
    np.ndarray
        ``(Q, n)`` float32 scores, columns in the order of ``rows``.

    Raises
    ------
    ValueError
        If a query is not a non-empty ``(Lq, D)`` matrix, or ``rows`` names a
        document outside ``[0, N)``.
    """
    queries = _as_queries(queries)
    offsets = np.asarray(offsets, dtype=np.int64)
    num_docs = len(offsets) - 1
    if rows is None:
        rows = np.arange(num_docs, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if len(rows) and (rows.min() < 0 or rows.max() >= num_docs):
        bad = int(np.flatnonzero((rows < 0) | (rows >= num_docs))[0])
        raise ValueError(
            f"rows[{bad}] = {rows[bad]} is not a document number in [0, {num_docs})."
        )
    out = np.zeros((len(queries), len(rows)), dtype=np.float32)
    if len(queries) == 0 or len(rows) == 0:
        return out
    pack = _Queries(queries, tokens.shape[1])
    starts, lengths = offsets[rows], offsets[rows + 1] - offsets[rows]
    positions = np.flatnonzero(lengths > 0)  # empty documents keep their 0
    if len(positions) == 0:
        return out
    starts, lengths = starts[positions], lengths[positions]
    source = torch.from_numpy(np.asarray(tokens))
    block_tokens = _block_tokens(min(pack.columns, _MAX_COLUMNS))

    def task(a: int, b: int) -> Callable[[], None]:
        def run() -> None:
            s, n = starts[a:b], lengths[a:b]
            local = np.zeros(b - a, dtype=np.intp)
            np.cumsum(n[:-1], out=local[1:])
            if np.all(s[1:] == s[:-1] + n[:-1]):  # stored back to back: a slice
                block = source[int(s[0]) : int(s[-1] + n[-1])]
            else:
                index = np.repeat(s - local, n) + np.arange(int(n.sum()))
                block = source.index_select(0, torch.from_numpy(index))
            converted = _buffer("block", len(block), block.shape[1]).copy_(block)
            out[:, positions[a:b]] = pack.score(converted, local)

        return run

    tasks = [task(a, b) for a, b in _blocks(lengths, block_tokens)]
    _run(tasks, 2.0 * pack.columns * tokens.shape[1] * lengths.sum(), num_threads)
    return out
