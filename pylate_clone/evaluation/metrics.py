"""Ranking metrics computed by ranx, the field's library (extra ``eval``).

Relevance comes from qrels (``{query_id: {doc_id: grade}}``, grade > 0 is
relevant); runs are ``{query_id: {doc_id: score}}``. Every query of the qrels
counts (ranx's ``make_comparable``: a query missing from the run scores 0), run
queries without qrels are ignored, and the mean over queries is reported.

Metric names are ranx's, each optionally with a cut-off ``@k``: ``hits``,
``hit_rate``, ``precision``, ``recall``, ``f1``, ``r-precision``, ``mrr``,
``map``, ``ndcg``, ``ndcg_burges``, ``dcg``, ``dcg_burges``, ``bpref`` and
``rbp.P`` (rank-biased precision with persistence ``P``, e.g. ``rbp.95``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

METRICS = (
    "hits",
    "hit_rate",
    "precision",
    "recall",
    "f1",
    "r-precision",
    "mrr",
    "map",
    "ndcg",
    "ndcg_burges",
    "dcg",
    "dcg_burges",
    "bpref",
    "rbp",
)
DEFAULT_METRICS = ["ndcg@10"] + [f"hits@{k}" for k in (1, 2, 3, 4, 5, 10)]


def _import_ranx():
    try:
        import ranx
    except ImportError as error:
        raise ImportError(
            "evaluation metrics need the optional 'ranx' package: "
            f"pip install 'pylate-clone[eval]'. ({error})"
        ) from None
    return ranx


def check_metric(metric: Any) -> str:
    """Validate one metric name (``"ndcg@10"``, ``"rbp.95"``...) before ranx sees it."""
    if not isinstance(metric, str):
        raise TypeError(f"metric names must be str, got {type(metric).__name__}.")
    name, _, cutoff = metric.partition("@")
    base = name.split(".", 1)[0] if name.startswith("rbp") else name
    if base not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}; known: {', '.join(METRICS)}.")
    if cutoff and (not cutoff.isdigit() or int(cutoff) < 1):
        raise ValueError(f"Invalid cut-off in metric {metric!r}.")
    return metric


def compute_metrics(
    qrels: Mapping[Any, Mapping[Any, Any]],
    run: Mapping[Any, Mapping[Any, float]],
    metrics: list[str] | str,
) -> dict[str, float] | float:
    """Mean of each metric over the qrels' queries, computed by ranx.

    Parameters
    ----------
    qrels
        ``{query_id: {doc_id: relevance}}`` (relevance: int or bool).
    run
        ``{query_id: {doc_id: score}}``.
    metrics
        One metric name or a list of names (see the module docstring).

    Returns
    -------
    dict[str, float] | float
        ``{metric: value}``, or a float for a single metric (a ``str`` or a
        one-element list), as ranx returns.
    """
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise ValueError("metrics is empty.")
    for metric in names:
        check_metric(metric)
    ranx = _import_ranx()
    qrels_dict = {
        str(q): {str(d): int(grade) for d, grade in docs.items()}
        for q, docs in qrels.items()
    }
    run_dict = {
        str(q): {str(d): float(score) for d, score in docs.items()}
        for q, docs in run.items()
    }
    result = ranx.evaluate(
        qrels=ranx.Qrels(qrels_dict),
        run=ranx.Run(run_dict),
        metrics=names if len(names) > 1 else names[0],
        make_comparable=True,
    )
    if isinstance(result, dict):
        return {name: float(value) for name, value in result.items()}
    return float(result)


def add_duplicates(queries: Sequence[Any], scores: Sequence[Any]) -> list:
    """Expand ``scores`` (one list per distinct query) to one list per query."""
    first = {}
    for position, query in enumerate(dict.fromkeys(queries)):
        first[query] = scores[position]
    return [first[query] for query in queries]


def evaluate(
    scores: Sequence[Sequence[Mapping[str, Any]]],
    qrels: Mapping[Any, Mapping[Any, Any]],
    queries: Sequence[Any] | Mapping[Any, Any],
    metrics: list[str] | None = None,
) -> dict[str, float] | float:
    """Score a retrieval run against qrels with ranx.

    Parameters
    ----------
    scores
        For each query, the retrieved ``[{"id": doc_id, "score": float}]``
        (the output of ``retrieve.ColBERT.retrieve`` or ``rank.rerank``).
    qrels
        ``{query_id: {doc_id: relevance}}``.
    queries
        The query ids ``scores`` belong to, in the same order (a dict is read
        as its keys). When queries repeat and ``scores`` has one list per
        distinct query, the lists are repeated to match.
    metrics
        ranx metric names, e.g. ``["map", "ndcg@10", "f1@5", "bpref"]``;
        default ``ndcg@10`` and ``hits@1..5, 10``.

    Returns
    -------
    dict[str, float] | float
        ``{metric: mean value}``, or a float for a single metric.

    Raises
    ------
    ValueError
        On an unknown metric, or if ``scores`` and ``queries`` differ in length.

    Examples
    --------
    >>> from pylate_clone import evaluation
    >>> scores = [[{"id": "1", "score": 0.9}, {"id": "2", "score": 0.8}]]
    >>> evaluation.evaluate(scores, {"q": {"2": 1}}, ["q"], metrics=["mrr", "hits@1"])
    {'mrr': 0.5, 'hits@1': 0.0}
    """
    queries = list(queries.keys()) if isinstance(queries, Mapping) else list(queries)
    if len(queries) > len(scores):
        scores = add_duplicates(queries, scores)
    if len(queries) != len(scores):
        raise ValueError(f"Got {len(scores)} result lists for {len(queries)} queries.")
    run = {
        query: {match["id"]: match["score"] for match in matches}
        for query, matches in zip(queries, scores)
    }
    return compute_metrics(qrels, run, metrics or DEFAULT_METRICS)
