"""Ranking metrics with ranx's names and definitions, without the ranx dependency.

Relevance comes from qrels (``{query_id: {doc_id: grade}}``, grade > 0 is
relevant); runs are ``{query_id: {doc_id: score}}``. Every query of the qrels
counts (a query missing from the run scores 0, as ranx's ``make_comparable``),
run queries without qrels are ignored, and the mean over queries is reported.

Supported metric names: ``ndcg``, ``ndcg_burges``, ``hits``, ``hit_rate``,
``precision``, ``recall``, ``mrr``, ``map``, ``r-precision``, each optionally with
a cut-off ``@k`` (e.g. ``ndcg@10``, ``hits@1``, ``map@100``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

Qrels = Mapping[str, Mapping[str, float]]
Run = Mapping[str, Mapping[str, float]]


def _ranking(results: Mapping[str, float]) -> list[str]:
    return [doc for doc, _ in sorted(results.items(), key=lambda x: (-x[1], str(x[0])))]


def _dcg(gains: list[float], burges: bool) -> float:
    return sum(
        ((2**g - 1) if burges else g) / math.log2(rank + 2)
        for rank, g in enumerate(gains)
    )


def _query_metric(
    name: str, k: int | None, ranking: list[str], judged: Mapping[str, float]
) -> float:
    relevant = {doc for doc, grade in judged.items() if grade > 0}
    if not relevant:
        return 0.0
    top = ranking if k is None else ranking[:k]
    hits = [doc in relevant for doc in top]
    if name == "hits":
        return float(sum(hits))
    if name == "hit_rate":
        return float(any(hits))
    if name == "precision":
        return sum(hits) / (k if k is not None else max(len(top), 1))
    if name == "recall":
        return sum(hits) / len(relevant)
    if name == "r-precision":
        return sum(doc in relevant for doc in ranking[: len(relevant)]) / len(relevant)
    if name == "mrr":
        return next((1.0 / (rank + 1) for rank, hit in enumerate(hits) if hit), 0.0)
    if name == "map":
        found, total = 0, 0.0
        for rank, hit in enumerate(hits):
            if hit:
                found += 1
                total += found / (rank + 1)
        return total / len(relevant)
    if name in ("ndcg", "ndcg_burges"):
        burges = name == "ndcg_burges"
        gains = [max(float(judged.get(doc, 0)), 0.0) for doc in top]
        ideal = sorted((float(g) for g in judged.values() if g > 0), reverse=True)
        ideal = ideal if k is None else ideal[:k]
        best = _dcg(ideal, burges)
        return _dcg(gains, burges) / best if best > 0 else 0.0
    raise ValueError(f"Unknown metric {name!r}.")


def parse_metric(metric: str) -> tuple[str, int | None]:
    """Split ``"ndcg@10"`` into ``("ndcg", 10)``."""
    name, _, cutoff = metric.partition("@")
    if cutoff and (not cutoff.isdigit() or int(cutoff) < 1):
        raise ValueError(f"Invalid cut-off in metric {metric!r}.")
    return name, int(cutoff) if cutoff else None


def compute_metrics(
    qrels: Qrels, run: Run, metrics: list[str] | str
) -> dict[str, float] | float:
    """Mean of each metric over the qrels' queries.

    Parameters
    ----------
    qrels
        ``{query_id: {doc_id: relevance}}``.
    run
        ``{query_id: {doc_id: score}}``.
    metrics
        One metric name or a list of names (see the module docstring).

    Returns
    -------
    dict[str, float] | float
        ``{metric: value}``, or a float when a single metric name (``str``) or a
        one-element list is given.

    Examples
    --------
    >>> qrels = {"q1": {"d1": 1}, "q2": {"d3": 1}}
    >>> run = {"q1": {"d1": 0.9, "d2": 0.1}, "q2": {"d1": 0.5, "d3": 0.4}}
    >>> compute_metrics(qrels, run, ["mrr", "hits@1"])
    {'mrr': 0.75, 'hits@1': 0.5}
    """
    single = isinstance(metrics, str)
    names = [metrics] if single else list(metrics)
    parsed = [parse_metric(metric) for metric in names]
    for name, _ in parsed:
        _query_metric(name, 1, [], {"x": 1})  # validates the name early
    queries = list(qrels)
    rankings = {qid: _ranking(run.get(qid, {})) for qid in queries}
    results = {}
    for metric, (name, k) in zip(names, parsed):
        values = [_query_metric(name, k, rankings[qid], qrels[qid]) for qid in queries]
        results[metric] = sum(values) / len(values) if values else 0.0
    if single or len(names) == 1:
        return results[names[0]]
    return results
