"""XTR scoring: rank documents from the token hits alone, no document vectors."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import torch

from ._result import RerankResult


def score_xtr(
    query_doc_ids: Sequence[Sequence[Hashable]],
    query_scores: Sequence[Sequence[float]],
    k: int,
    device: str = "cpu",
) -> list[RerankResult]:
    """Score the documents hit by one query's tokens, XTR style.

    A document's score is the sum over query tokens of its best retrieved
    token score for that query token. Where none of its tokens was retrieved
    for a query token, that token's smallest retrieved score stands in (the
    "missing similarity imputation" of XTR: the document is assumed to be no
    closer than the worst hit). No document embedding is read.

    Parameters
    ----------
    query_doc_ids
        ``q_tok`` lists: for each query token, the ids of the documents owning
        its retrieved neighbours (one id per neighbour; an id may repeat).
    query_scores
        ``q_tok`` lists aligned with ``query_doc_ids``: the similarity of each
        neighbour (higher is closer).
    k
        Number of documents returned.
    device
        Where the ``(n_docs, q_tok)`` score table is reduced.

    Returns
    -------
    list[RerankResult]
        Up to ``k`` ``{"id", "score"}``, best first; ties keep the order in
        which the documents were first hit. ``[]`` when nothing was retrieved.

    Raises
    ------
    ValueError
        If the two inputs do not have the same number of query tokens, a token's
        ids and scores differ in length, or ``k`` is not positive.

    Examples
    --------
    >>> from pylate_clone.rank import score_xtr
    >>> hits = [["a", "b"], ["b", "c"]]
    >>> scores = [[0.9, 0.5], [0.8, 0.2]]
    >>> [r["id"] for r in score_xtr(hits, scores, k=3)]
    ['b', 'a', 'c']
    """
    if len(query_doc_ids) != len(query_scores):
        raise ValueError(
            "query_doc_ids and query_scores must have the same number of query "
            f"tokens: got {len(query_doc_ids)} and {len(query_scores)}."
        )
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    q_tok = len(query_doc_ids)
    positions: dict[Hashable, int] = {}
    rows, cols, values = [], [], []
    fill = np.zeros(q_tok, dtype=np.float32)
    for token, (ids, scores) in enumerate(zip(query_doc_ids, query_scores)):
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        if len(ids) != len(scores):
            raise ValueError(
                "each query token needs matching document IDs and scores lengths: "
                f"query token {token} has {len(ids)} ids and {len(scores)} scores."
            )
        if len(scores) == 0:
            continue
        fill[token] = scores.min()
        rows.extend(positions.setdefault(i, len(positions)) for i in ids)
        cols.append(np.full(len(scores), token, dtype=np.int64))
        values.append(scores)
    if not positions:
        return []
    n_docs = len(positions)
    table = torch.full((n_docs * q_tok,), float("-inf"), device=device)
    flat = torch.as_tensor(rows, dtype=torch.int64) * q_tok + torch.from_numpy(
        np.concatenate(cols)
    )
    table.scatter_reduce_(
        0,
        flat.to(device),
        torch.from_numpy(np.concatenate(values)).to(device),
        reduce="amax",
        include_self=True,
    )
    table = table.view(n_docs, q_tok)
    imputed = torch.from_numpy(fill).to(device).expand(n_docs, q_tok)
    totals = torch.where(torch.isneginf(table), imputed, table).sum(dim=1).cpu()
    # A stable sort keeps first-hit order among equal scores, so the result
    # does not depend on the device's top-k kernel.
    order = np.argsort(-totals.numpy(), kind="stable")[:k]
    ids = list(positions)
    return [RerankResult(id=ids[j], score=float(totals[j])) for j in order]
