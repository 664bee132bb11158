"""evaluation.evaluate on ranx (every metric PyLate lists) and get_beir_triples vs PyLate."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from pylate_clone import evaluation

PYLATE_TRIPLES = Path(__file__).parent / "fixtures" / "api" / "beir_triples.json"


def test_every_pylate_metric_by_hand() -> None:
    # q1 judges a, b relevant, n non-relevant; q2 c (grade 2), m non-relevant.
    qrels = {"q1": {"a": 1, "b": 1, "n": 0}, "q2": {"c": 2, "m": 0}}
    scores = [
        [
            {"id": "a", "score": 3.0},
            {"id": "n", "score": 2.0},
            {"id": "b", "score": 1.0},
        ],
        [{"id": "x", "score": 2.0}, {"id": "c", "score": 1.0}],
    ]
    got = evaluation.evaluate(
        scores,
        qrels,
        ["q1", "q2"],
        metrics=[
            "f1@2",
            "dcg@3",
            "dcg_burges@3",
            "ndcg_burges@3",
            "rbp.5",
            "bpref",
            "r-precision",
            "hit_rate@1",
        ],
    )
    log2 = math.log2
    # f1@2: q1 P=1/2 R=1/2 -> 1/2; q2 P=1/2 R=1 -> 2/3.
    assert got["f1@2"] == pytest.approx((0.5 + 2 / 3) / 2)
    # dcg@3 (gain = grade): q1 1 + 1/log2(4); q2 2/log2(3).
    assert got["dcg@3"] == pytest.approx((1 + 1 / log2(4) + 2 / log2(3)) / 2)
    # dcg_burges@3 (gain = 2^grade - 1): q2's gain is 3.
    assert got["dcg_burges@3"] == pytest.approx((1 + 1 / log2(4) + 3 / log2(3)) / 2)
    ideal_q1 = 1 + 1 / log2(3)
    assert got["ndcg_burges@3"] == pytest.approx(
        ((1 + 1 / log2(4)) / ideal_q1 + (3 / log2(3)) / 3) / 2
    )
    # rbp.5 = (1 - p) * sum(grade_i * p^(i-1)), graded in ranx:
    # q1 0.5 * (1 + 0.25); q2 0.5 * (2 * 0.5).
    assert got["rbp.5"] == pytest.approx((0.5 * 1.25 + 0.5) / 2)
    # bpref: q1 a has 0 judged non-relevant above, b has 1 of min(R=2, N=1) -> 1/2.
    assert got["bpref"] == pytest.approx(((1 + 0) / 2 + 1.0) / 2)
    assert got["r-precision"] == pytest.approx((0.5 + 0.0) / 2)
    assert got["hit_rate@1"] == pytest.approx(0.5)
    assert isinstance(
        evaluation.evaluate(scores, qrels, ["q1", "q2"], metrics=["mrr"]), float
    )


def test_evaluate_defaults_and_errors() -> None:
    scores = [[{"id": "a", "score": 1.0}]]
    got = evaluation.evaluate(scores, {"q": {"a": 1}}, {"q": "text"})
    assert list(got) == ["ndcg@10"] + [f"hits@{k}" for k in (1, 2, 3, 4, 5, 10)]
    assert got["ndcg@10"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="Unknown metric 'bogus@3'"):
        evaluation.evaluate(scores, {"q": {"a": 1}}, ["q"], metrics=["bogus@3"])
    with pytest.raises(ValueError, match="2 queries"):
        evaluation.evaluate(scores * 3, {"q": {"a": 1}}, ["q", "r"])


def test_get_beir_triples_equals_pylate_on_scifact(data_dir) -> None:
    documents, queries, qrels = evaluation.load_beir(str(data_dir / "scifact"))
    expected = json.loads(PYLATE_TRIPLES.read_text())
    random.seed(0)
    triples = evaluation.get_beir_triples(documents, queries, qrels)
    by_text = {d["text"]: d["id"] for d in documents}
    assert [[q, by_text[p]] for q, p, _ in triples] == expected
    assert len(triples) == 339 and all(n in by_text for _, _, n in triples)
    with pytest.raises(KeyError, match="missing-doc"):
        evaluation.get_beir_triples(documents, queries, {"1": {"missing-doc": 1}})
