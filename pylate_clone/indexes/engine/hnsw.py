"""Token graphs of the Voyager index: which tokens a graph holds, and its search.

A segment's HNSW graph holds every ``stride``-th token of each document
(the document's first token always), labelled by the token's row in the
segment's token store. The graph only has to find candidate documents: the
retriever re-scores them by exact MaxSim over all their stored tokens, and a
relevant document whose best token is missing from the graph is still found
through its neighbouring tokens (a ColBERT document's tokens cluster).

This module handles plain arrays and a graph object passed in (anything with
Voyager's ``query(vectors, k, query_ef)`` and ``num_elements``); it imports
no storage and no Voyager.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Graph storage names accepted by ``Voyager(graph_storage=...)`` -> the
#: member of ``voyager.StorageDataType``.
GRAPH_STORAGES = {"float8": "Float8", "e4m3": "E4M3", "float32": "Float32"}

#: Neighbours per query token (``k_token``) of a collection of up to
#: ``K_TOKEN_TOKENS`` live tokens when nobody sets one; beyond, the depth grows
#: like ``live_tokens ** K_TOKEN_POWER`` (:func:`k_token_for`).
DEFAULT_K_TOKEN = 100
K_TOKEN_TOKENS = 1_000_000
K_TOKEN_POWER = 1 / 3


def k_token_for(live_tokens: int, base: int = DEFAULT_K_TOKEN) -> int:
    """Default neighbours per query token for a collection of ``live_tokens``.

    In a larger collection a query token's ``base`` nearest neighbours fall in
    fewer of the documents that make the true top ``k`` (more tokens crowd
    around each), so the candidate depth grows with the collection:
    ``base`` up to ``K_TOKEN_TOKENS`` live tokens, beyond it ``base *
    (live_tokens / K_TOKEN_TOKENS) ** K_TOKEN_POWER``, rounded up.

    Parameters
    ----------
    live_tokens
        Stored token vectors of the live (not deleted) documents.
    base
        The depth of a small collection (``>= 1``).

    Returns
    -------
    int
        The depth, ``>= base``.
    """
    growth = max(1.0, live_tokens / K_TOKEN_TOKENS) ** K_TOKEN_POWER
    # The epsilon keeps an exact product (27M tokens: 300) from rounding up.
    return math.ceil(base * growth - 1e-9)


def sampled_rows(lengths: np.ndarray, first_row: int, stride: int) -> np.ndarray:
    """Rows of the tokens a graph holds, for a block of whole documents.

    Parameters
    ----------
    lengths
        ``(n,)`` token counts of the block's documents, in order.
    first_row
        Row, in the segment's token store, of the block's first token.
    stride
        Keep tokens ``0, stride, 2 * stride, ...`` of each document.

    Returns
    -------
    np.ndarray
        ``(m,)`` int64 absolute rows, ascending (``m = sum(ceil(L / stride))``).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    rows = np.arange(int(lengths.sum()), dtype=np.int64)
    if stride > 1:
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        rows = rows[(rows - starts) % stride == 0]
    return rows + first_row


def _deleted_tokens(offsets: np.ndarray, deleted: np.ndarray) -> int:
    if not len(deleted):
        return 0
    return int((offsets[deleted + 1] - offsets[deleted]).sum())


def segment_neighbours(
    graph: Any,
    offsets: np.ndarray,
    deleted: np.ndarray,
    live: np.ndarray | None,
    vectors: np.ndarray,
    k: int,
    ef: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest graph tokens of each vector, as document rows of one segment.

    Parameters
    ----------
    graph
        The segment's graph (labels are token rows).
    offsets
        ``(N + 1,)`` token offsets of the segment's documents.
    deleted
        Deleted document rows (their tokens are still in the graph).
    live
        ``(N,)`` bool mask of live rows, or None when nothing is deleted.
    vectors
        ``(n, H)`` float32 query token vectors.
    k, ef
        Neighbours wanted per vector and the search's candidate list size.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``(n, k')`` document rows (-1 for deleted documents) and the matching
        cosine distances.
    """
    total = graph.num_elements
    # Ask for more neighbours when deleted vectors may crowd out the live ones.
    kk = min(total, k + min(_deleted_tokens(offsets, deleted), 3 * k))
    ef = max(ef, kk)
    while True:
        try:
            ids, dist = graph.query(vectors, k=kk, query_ef=ef)
            break
        except Exception as error:  # voyager.RecallError on tiny graphs
            if "Fewer than expected" not in str(error):
                raise
            if ef < total:
                ef = min(total, ef * 4)
            elif kk > 1:
                kk = max(1, kk // 2)
            else:
                raise
    ids = np.asarray(ids, dtype=np.int64).reshape(len(vectors), -1)
    dist = np.asarray(dist, dtype=np.float32).reshape(len(vectors), -1)
    rows = np.searchsorted(offsets, ids, side="right") - 1
    if live is not None:
        rows = np.where(live[rows], rows, -1)
    return rows, dist
