"""Fusion of ranked lists: ColBERT's and BM25's into one hybrid ranking.

* :func:`reciprocal_rank` (RRF): ``sum 1 / (constant + rank)`` over the
  lists a document appears in (rank from 1); scores of different scales need
  no calibration, only the order counts.
* :func:`relative_score`: each list's scores min-max normalised to [0, 1]
  (a document absent from a list gets 0 there), then
  ``alpha * colbert + (1 - alpha) * bm25``; keeps how far apart the scores
  are, ``alpha`` weighs the two.

Ties are broken by the order of first appearance (ColBERT's list first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

FUSIONS = ("rrf", "relative")
RRF_CONSTANT = 60


def _ranked(scores: dict[Any, float], k: int) -> list[dict[str, Any]]:
    order = {doc: i for i, doc in enumerate(scores)}
    best = sorted(scores, key=lambda doc: (-scores[doc], order[doc]))[:k]
    return [{"id": doc, "score": float(scores[doc])} for doc in best]


def reciprocal_rank(
    lists: Sequence[Sequence[dict[str, Any]]], k: int, constant: int = RRF_CONSTANT
) -> list[dict[str, Any]]:
    """Reciprocal-rank fusion of ranked ``{"id", "score"}`` lists; top ``k``."""
    scores: dict[Any, float] = {}
    for ranking in lists:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit["id"]] = scores.get(hit["id"], 0.0) + 1.0 / (constant + rank)
    return _ranked(scores, k)


def _normalised(ranking: Sequence[dict[str, Any]]) -> dict[Any, float]:
    if not ranking:
        return {}
    values = [float(hit["score"]) for hit in ranking]
    low, high = min(values), max(values)
    span = high - low
    return {
        hit["id"]: (1.0 if span == 0 else (v - low) / span)
        for hit, v in zip(ranking, values)
    }


def relative_score(
    dense: Sequence[dict[str, Any]],
    keyword: Sequence[dict[str, Any]],
    alpha: float,
    k: int,
) -> list[dict[str, Any]]:
    """Relative-score fusion: ``alpha`` weighs ``dense`` (ColBERT) against ``keyword``."""
    a, b = _normalised(dense), _normalised(keyword)
    scores = {doc: alpha * a.get(doc, 0.0) for doc in a}
    for doc, value in b.items():
        scores[doc] = scores.get(doc, 0.0) + (1.0 - alpha) * value
    return _ranked(scores, k)


def fuse(
    dense: Sequence[dict[str, Any]],
    keyword: Sequence[dict[str, Any]],
    fusion: str,
    alpha: float,
    k: int,
) -> list[dict[str, Any]]:
    """One query's hybrid top ``k`` by ``fusion`` (``"rrf"`` or ``"relative"``)."""
    if fusion == "rrf":
        return reciprocal_rank([dense, keyword], k)
    return relative_score(dense, keyword, alpha, k)


def check_fusion(fusion: Any, alpha: Any) -> tuple[str, float]:
    """Validated ``fusion`` name and ``alpha`` (a number in [0, 1])."""
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {list(FUSIONS)}, got {fusion!r}.")
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, (int, float))
        or not 0 <= alpha <= 1
    ):
        raise ValueError(f"alpha must be a number between 0 and 1, got {alpha!r}.")
    return fusion, float(alpha)
