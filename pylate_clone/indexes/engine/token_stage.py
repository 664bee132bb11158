"""The token stage: approximate MaxSim from the tokens of the probed centroids.

After the IVF probe, each query token ``i`` has its ``P`` best centroids.
Every document token assigned to one of them is scored exactly against
``q_i`` from its codes (``q . x = (q . c + g q . w) / |c + g w|``, the same
arithmetic as the full re-scoring). The document's other tokens are
estimated by the score of the query token's ``P + 1``-th centroid (what an
unprobed token could reach: WARP's missing-similarity imputation, XTR's
idea), so its approximate score is, per query token, the larger of its best
token found and that estimate. Summed over query tokens this
ranks candidates nearly as the full MaxSim does, so far fewer of them need a
full decode and MaxSim than when they are ranked by centroid codes alone
(docs/index_engine.md, "The token stage").

To read a centroid's tokens sequentially, a segment's packed residuals,
gains and scales are regrouped by centroid in memory when it opens
(:class:`TokenLists`: ~76 bytes per token of RAM at 4 bits and dimension
128; nothing on disk). A centroid's tokens are decoded once per query and
dotted with every query token that probed it.

Interface contract (used by ``engine.search``; keep it stable):

``TokenLists.build(codes (T,), packed (T, W), gains (T,), scales (T,),
    offsets (N + 1,), num_centroids)``
``probe_tokens(query_scores (Lq, K), n_probe) -> (probes (Lq, P), imputed (Lq,))``
``token_scores(query (Lq, D), query_scores (Lq, K), probes, imputed, lists,
    weights (Dp, 2**nbits), keep=None, num_threads=None) -> (rows (n,), scores (n,))``
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ...utils.threads import outer_num_threads
from .compressed import run_tasks


@dataclass(frozen=True)
class TokenLists:
    """A compressed segment's tokens regrouped by centroid.

    Attributes
    ----------
    starts
        ``(K + 1,)`` int64: the tokens of centroid ``c`` are
        ``starts[c]:starts[c + 1]`` of the arrays below.
    packed
        ``(T, W)`` uint8 packed residuals, in centroid order.
    gains, scales
        ``(T,)`` float32 gains ``g`` and ``1 / |c + g w|``, in centroid order.
    docs
        ``(T,)`` int32 document row of each token.
    num_docs
        Documents ``N`` of the segment.
    """

    starts: np.ndarray
    packed: np.ndarray
    gains: np.ndarray
    scales: np.ndarray
    docs: np.ndarray
    num_docs: int

    @classmethod
    def build(
        cls,
        codes: np.ndarray,
        packed: np.ndarray,
        gains: np.ndarray,
        scales: np.ndarray,
        offsets: np.ndarray,
        num_centroids: int,
    ) -> TokenLists:
        codes = np.asarray(codes)
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes, minlength=num_centroids).astype(np.int64)
        starts = np.zeros(num_centroids + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        offsets = np.asarray(offsets, dtype=np.int64)
        owner = np.repeat(np.arange(len(offsets) - 1, dtype=np.int32), np.diff(offsets))
        return cls(
            starts=starts,
            packed=np.ascontiguousarray(np.asarray(packed)[order]),
            gains=np.ascontiguousarray(np.asarray(gains, dtype=np.float32)[order]),
            scales=np.ascontiguousarray(np.asarray(scales, dtype=np.float32)[order]),
            docs=owner[order],
            num_docs=len(offsets) - 1,
        )

    @property
    def nbytes(self) -> int:
        return sum(
            a.nbytes
            for a in (self.starts, self.packed, self.gains, self.scales, self.docs)
        )


def probe_tokens(
    query_scores: np.ndarray, n_probe: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each query token's ``n_probe`` best centroids and its imputed score.

    Returns ``(probes (Lq, P) int64, imputed (Lq,) float32)``, ``P =
    min(n_probe, K)``; ``imputed`` is the ``P + 1``-th best centroid score
    (the worst score when every centroid is probed: then every document's
    tokens are all found and it is never used).
    """
    scores = np.asarray(query_scores, dtype=np.float32)
    count = scores.shape[1]
    probe = int(min(max(n_probe, 1), count))
    if probe < count:
        part = np.argpartition(-scores, probe, axis=1)[:, : probe + 1]
        values = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        part = np.take_along_axis(part, order, axis=1)
        imputed = np.take_along_axis(values, order, axis=1)[:, probe]
        return np.ascontiguousarray(part[:, :probe], dtype=np.int64), imputed
    probes = np.tile(np.arange(count, dtype=np.int64), (len(scores), 1))
    return probes, scores.min(axis=1)


def _groups(probes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probed centroids once each, with the query tokens that probed them.

    ``(centroids (U,), starts (U + 1,), tokens (Lq * P,))``: the query tokens
    of ``centroids[u]`` are ``tokens[starts[u]:starts[u + 1]]``.
    """
    flat = probes.reshape(-1)
    owner = np.repeat(np.arange(len(probes), dtype=np.int64), probes.shape[1])
    order = np.argsort(flat, kind="stable")
    flat, owner = flat[order], owner[order]
    centroids, first = np.unique(flat, return_index=True)
    starts = np.append(first, len(flat)).astype(np.int64)
    return centroids.astype(np.int64), starts, owner


def token_scores(
    query: np.ndarray,
    query_scores: np.ndarray,
    probes: np.ndarray,
    imputed: np.ndarray,
    lists: TokenLists,
    weights: np.ndarray,
    keep: np.ndarray | None = None,
    num_threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate MaxSim of every document reached by one query's probes.

    Parameters
    ----------
    query
        ``(Lq, D)`` float32 query tokens.
    query_scores
        ``(Lq, K)`` float32 query-token x centroid scores.
    probes, imputed
        :func:`probe_tokens` of ``query_scores``.
    lists
        The segment's :class:`TokenLists`.
    weights
        ``(Dp, 2**nbits)`` float32 bucket weights (``ScoringBook.weights``).
    keep
        ``(N,)`` bool: only documents with True are scored (deleted rows and
        rows outside a filter are skipped before decoding, so a selective
        filter with a widened probe decodes about as much as no filter);
        None: every document.
    num_threads
        Workers (the documents are split between them in contiguous ranges);
        None: torch's thread count, at most the cores.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``rows`` ``(n,)`` int64, sorted, the documents with at least one token
        in a probed centroid, and their approximate scores ``(n,)`` float32.
    """
    from ._tokens_jit import stage

    query = np.ascontiguousarray(query, dtype=np.float32)
    scores = np.ascontiguousarray(query_scores, dtype=np.float32)
    imputed = np.ascontiguousarray(imputed, dtype=np.float32)
    mask = (
        np.zeros(0, dtype=np.uint8)
        if keep is None
        else np.ascontiguousarray(keep, dtype=bool).view(np.uint8)
    )
    if len(mask) not in (0, lists.num_docs):
        raise ValueError(f"keep must be ({lists.num_docs},), got {len(mask)} values.")
    centroids, starts, tokens = _groups(probes)
    num_docs = lists.num_docs
    workers = num_threads or min(outer_num_threads(), os.cpu_count() or 1)
    # Contiguous document ranges of equal size: a worker owns its rows, so
    # nothing is merged afterwards (tokens spread evenly over the rows).
    workers = int(max(1, min(workers, num_docs // 256)))
    cuts = [num_docs * w // workers for w in range(workers + 1)]
    rows = np.empty(num_docs, dtype=np.int64)
    out = np.empty(num_docs, dtype=np.float32)
    counts = [0] * workers

    def task(w: int):
        def run() -> None:
            a, b = cuts[w], cuts[w + 1]
            counts[w] = stage(
                centroids, starts, tokens, scores, lists.starts, lists.docs,
                lists.packed, lists.gains, lists.scales, query, weights, mask,
                imputed, a, b, rows[a:b], out[a:b],
            )  # fmt: skip

        return run

    run_tasks([task(w) for w in range(workers)], workers)
    parts = [slice(cuts[w], cuts[w] + counts[w]) for w in range(workers)]
    return np.concatenate([rows[p] for p in parts]), np.concatenate(
        [out[p] for p in parts]
    )
