"""MaxSim of queries against compressed documents (the codes, never a decoded copy).

Two paths with the same results (up to float rounding):

* CPU: :func:`maxsim_codes` runs the fused numba kernel of :mod:`._codes_jit`
  (decode a candidate into a scratch tile, register-tile MaxSim) on a small
  thread pool; the kernel releases the GIL.
* any torch device: :func:`maxsim_codes_torch` gathers the candidates' codes,
  decodes them on the device (:func:`.codec_torch.decompress_torch`) and reduces
  with one matmul and a segment max per query.

Interface contract (used by the search; keep it stable):

``ScoringBook.build(centroids (K, D), codec)``: index-level tables
``maxsim_codes(queries, book, codes (T,), packed (T, W), gains (T,),
    offsets (N + 1,), rows: list of (n_i,) int64) -> list of (n_i,) float32``
``maxsim_codes_torch(...)``: the same arguments as tensors plus ``device``
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from ...utils.threads import outer_num_threads
from . import codec as _codec
from .codec_torch import decompress_torch

_LANES = 16
_TASK_TOKENS = 1 << 15  # decoded tokens per task of the thread pool
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@dataclass(frozen=True)
class ScoringBook:
    """Index-level tables of the fused kernel, shared by every segment.

    Attributes
    ----------
    codec
        The residual quantiser.
    centroids
        ``(K, Dp)`` float32, ``Dp = W * per`` (zero columns past ``D``).
    weights
        ``(Dp, 2**nbits)`` float32 bucket weights of each dimension, zero rows
        past ``D`` (the kernels' look-up table: 8 KB at 4 bits).
    device_centroids
        ``(K, D)`` float32 tensor on the device of the torch path, or None.
    """

    codec: _codec.Codec
    centroids: np.ndarray
    weights: np.ndarray
    device_centroids: torch.Tensor | None = None

    @classmethod
    def build(
        cls,
        centroids: np.ndarray,
        codec: _codec.Codec,
        device: str | torch.device | None = None,
    ) -> ScoringBook:
        centroids = np.asarray(centroids, dtype=np.float32)
        if centroids.ndim != 2 or centroids.shape[1] != codec.dim:
            raise ValueError(
                f"centroids must be (K, {codec.dim}), got shape {centroids.shape}."
            )
        padded = np.zeros(
            (len(centroids), codec.width * (8 // codec.nbits)), dtype=np.float32
        )
        padded[:, : codec.dim] = centroids
        on_device = None if device is None else torch.from_numpy(centroids).to(device)
        weights = np.zeros((padded.shape[1], 1 << codec.nbits), dtype=np.float32)
        weights[: codec.dim] = codec.weights
        return cls(codec, padded, weights, on_device)

    @property
    def padded_dim(self) -> int:
        return int(self.centroids.shape[1])


def _query_columns(
    queries: Sequence[np.ndarray], dim: int, padded_dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(Q, Dp, S)`` transposed zero-padded queries and their lengths ``(Q,)``."""
    lengths = np.array([len(q) for q in queries], dtype=np.int64)
    stride = int(-(-max(1, int(lengths.max(initial=1))) // _LANES) * _LANES)
    columns = np.zeros((len(queries), padded_dim, stride), dtype=np.float32)
    for i, query in enumerate(queries):
        query = np.asarray(query, dtype=np.float32)
        if query.ndim != 2 or query.shape[1] != dim or len(query) == 0:
            raise ValueError(
                f"queries[{i}] must be a non-empty (Lq, {dim}) matrix, got shape "
                f"{query.shape}."
            )
        columns[i, :dim, : len(query)] = query.T
    return columns, lengths


def _pairs(
    rows: Sequence[np.ndarray], num_docs: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened ``(query, row)`` pairs sorted by row, and each pair's output slot."""
    sizes = [len(r) for r in rows]
    pair_row = (
        np.concatenate([np.asarray(r, dtype=np.int64).reshape(-1) for r in rows])
        if rows
        else np.zeros(0, np.int64)
    )
    if len(pair_row) and (pair_row.min() < 0 or pair_row.max() >= num_docs):
        bad = int(np.flatnonzero((pair_row < 0) | (pair_row >= num_docs))[0])
        query = int(np.searchsorted(np.cumsum(sizes), bad, side="right"))
        raise ValueError(
            f"rows[{query}] names {pair_row[bad]}, not a document number in "
            f"[0, {num_docs})."
        )
    pair_query = np.repeat(np.arange(len(rows), dtype=np.int64), sizes)
    order = np.argsort(pair_row, kind="stable")
    return pair_query[order], pair_row[order], order


def _task_bounds(
    sizes: np.ndarray, workers: int, same: np.ndarray | None = None
) -> np.ndarray:
    """Cut points of ``len(sizes)`` work items into tasks of about equal work.

    ``sizes`` ``(n,)``: the work of each item (tokens). Tasks hold at most
    ``_TASK_TOKENS`` and are at least ``workers`` when there is enough work;
    ``same`` ``(n,)``: items with equal consecutive values stay in one task.
    Returns ``(tasks + 1,)`` increasing bounds from 0 to ``n``.
    """
    n = len(sizes)
    total = int(sizes.sum()) if n else 0
    if n == 0 or total == 0:
        return np.array([0, n], dtype=np.int64)
    per = max(1024, min(_TASK_TOKENS, -(-total // max(1, workers))))
    done = np.cumsum(sizes)
    cuts = np.searchsorted(done, np.arange(per, total, per), side="right")
    cuts = cuts[(cuts > 0) & (cuts < n)]
    if same is not None and len(cuts):
        cuts = cuts[same[cuts] != same[cuts - 1]]
    return np.unique(np.concatenate([[0], cuts, [n]])).astype(np.int64)


def run_tasks(tasks: list, workers: int) -> None:
    """Run ``tasks`` (callables) on the shared pool of ``workers`` threads; wait."""
    global _pool
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            task()
        return
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers:
            _pool = ThreadPoolExecutor(max_workers=workers)
        pool = _pool
    for future in [pool.submit(task) for task in tasks]:
        future.result()


def maxsim_codes(
    queries: Sequence[np.ndarray],
    book: ScoringBook,
    codes: np.ndarray,
    packed: np.ndarray,
    gains: np.ndarray,
    offsets: np.ndarray,
    rows: Sequence[np.ndarray],
    num_threads: int | None = None,
    scales: np.ndarray | None = None,
    query_scores: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """MaxSim of each query against its own candidate rows, from the codes.

    Parameters
    ----------
    queries
        ``Q`` float32 ``(Lq_i, D)`` matrices.
    book
        Index-level tables (:meth:`ScoringBook.build`).
    codes, packed, gains
        ``(T,)`` centroid numbers, ``(T, W)`` packed residuals (may be memory
        maps) and ``(T,)`` gains (float32 is read in place; other dtypes are
        converted per call) of one segment.
    offsets
        ``(N + 1,)`` int64 token offsets of the segment's documents.
    rows
        ``Q`` arrays of document rows, one per query (repeats allowed).
    num_threads
        Worker threads; None uses torch's thread count.
    scales, query_scores
        Given together: the segment's ``(T,)`` float32 ``1 / |c + g w|``
        (:func:`inverse_norms`) and each query's ``(Lq, K)`` token x centroid
        scores. Then ``q . x = (q . c + g q . w) / |c + g w|`` takes ``q . c``
        from the scores and only ``g w`` is decoded (the same score up to
        float rounding, less work per token).

    Returns
    -------
    list[np.ndarray]
        ``(n_i,)`` float32 scores per query, in the order of ``rows[i]``.
    """
    from ._codes_jit import codes_maxsim  # numba compiles on first use

    if len(queries) != len(rows):
        raise ValueError(
            f"rows must hold one array per query ({len(queries)}), got {len(rows)}."
        )
    offsets = np.asarray(offsets, dtype=np.int64)
    pair_query, pair_row, order = _pairs(rows, len(offsets) - 1)
    out = np.zeros(len(pair_row), dtype=np.float32)
    if len(queries) and len(pair_row):
        columns, lengths = _query_columns(queries, book.codec.dim, book.padded_dim)
        codes = np.asarray(codes)
        packed = np.asarray(packed)
        gains = np.asarray(gains, dtype=np.float32)
        workers = num_threads or min(outer_num_threads(), os.cpu_count() or 1)
        # Cut the sorted pairs into tasks of at most _TASK_TOKENS decoded
        # tokens, at least one per worker (one query's few hundred candidates
        # still use every core), never between two pairs of the same row (its
        # tile is decoded once).
        sizes = offsets[pair_row + 1] - offsets[pair_row]
        bounds = _task_bounds(sizes, workers, same=pair_row)

        if scales is not None and query_scores is not None:
            k = len(book.centroids)
            bias = np.zeros((len(queries), k, columns.shape[2]), dtype=np.float32)
            for i, scores in enumerate(query_scores):
                bias[i, :, : len(scores)] = np.asarray(scores).T
        else:
            bias, scales = np.zeros((0, 0, 0), np.float32), np.zeros(0, np.float32)

        def task(a: int, b: int):
            def run() -> None:
                codes_maxsim(
                    columns, lengths, pair_query[a:b], pair_row[a:b], offsets,
                    codes, packed, gains, book.centroids, book.weights,
                    book.codec.normalize, scales, bias, out[a:b],
                )  # fmt: skip

            return run

        tasks = [task(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        run_tasks(tasks, workers)
    scores = np.empty_like(out)
    scores[order] = out
    ends = np.cumsum([len(r) for r in rows])
    return np.split(scores, ends[:-1]) if len(rows) else []


def maxsim_codes_torch(
    queries: Sequence[torch.Tensor | np.ndarray],
    codec: _codec.Codec,
    centroids: torch.Tensor,
    codes: torch.Tensor,
    packed: torch.Tensor,
    gains: torch.Tensor,
    offsets: np.ndarray,
    rows: Sequence[np.ndarray],
) -> list[np.ndarray]:
    """:func:`maxsim_codes` through torch on the device of ``packed``.

    ``centroids``, ``codes``, ``packed`` and ``gains`` are tensors on the device; the
    candidates' tokens are gathered there, decoded and scored with one
    ``(Lq, t)`` matmul and a per-document maximum per query.
    """
    if len(queries) != len(rows):
        raise ValueError(
            f"rows must hold one array per query ({len(queries)}), got {len(rows)}."
        )
    device = packed.device
    offsets = np.asarray(offsets, dtype=np.int64)
    num_docs = len(offsets) - 1
    results = []
    for i, (query, r) in enumerate(zip(queries, rows)):
        r = np.asarray(r, dtype=np.int64).reshape(-1)
        if len(r) and (r.min() < 0 or r.max() >= num_docs):
            raise ValueError(
                f"rows[{i}] names a row outside [0, {num_docs}): "
                f"{int(r[(r < 0) | (r >= num_docs)][0])}."
            )
        q = torch.as_tensor(query).to(device=device, dtype=torch.float32)
        if q.ndim != 2 or q.shape[1] != codec.dim or len(q) == 0:
            raise ValueError(
                f"queries[{i}] must be a non-empty (Lq, {codec.dim}) matrix, got "
                f"shape {tuple(q.shape)}."
            )
        starts, lengths = offsets[r], offsets[r + 1] - offsets[r]
        if len(r) == 0 or lengths.sum() == 0:
            results.append(np.zeros(len(r), dtype=np.float32))
            continue
        local = np.repeat(np.arange(len(r)), lengths)
        index = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(
            int(lengths.sum())
        )
        index_t = torch.from_numpy(index).to(device)
        decoded = decompress_torch(
            codes[index_t], packed[index_t], gains[index_t], centroids, codec
        )
        sims = q @ decoded.T  # (Lq, t)
        owner = torch.from_numpy(local).to(device).expand_as(sims)
        best = torch.full((len(q), len(r)), -torch.inf, device=device)
        best = best.scatter_reduce(1, owner, sims, reduce="amax", include_self=True)
        score = best.sum(dim=0)
        score = torch.where(torch.from_numpy(lengths > 0).to(device), score, 0.0)
        results.append(score.cpu().numpy().astype(np.float32))
    return results


def inverse_norms(
    book: ScoringBook,
    codes: np.ndarray,
    packed: np.ndarray,
    gains: np.ndarray,
    num_threads: int | None = None,
) -> np.ndarray:
    """``(T,)`` float32 ``1 / |c + g w|`` of a segment's reconstructions.

    The scales :func:`maxsim_codes` needs to score from ``g w`` alone; all
    ones when the codec does not renormalise. Computed once per segment (one
    decode of every token, on the thread pool).
    """
    from ._codes_jit import inverse_norms as kernel

    count = len(codes)
    out = np.ones(count, dtype=np.float32)
    if not book.codec.normalize or count == 0:
        return out
    codes, packed = np.asarray(codes), np.asarray(packed)
    gains = np.asarray(gains, dtype=np.float32)
    workers = num_threads or min(outer_num_threads(), os.cpu_count() or 1)
    step = max(1 << 14, -(-count // workers))

    def task(a: int, b: int):
        def run() -> None:
            kernel(codes, packed, gains, book.centroids, book.weights, a, b, out[a:b])

        return run

    run_tasks([task(a, min(a + step, count)) for a in range(0, count, step)], workers)
    return out
