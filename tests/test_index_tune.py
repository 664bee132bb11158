"""index.tune() and recall against exact MaxSim, on real ColBERT vectors.

The PyLate reference collection (300 documents, 10 queries) encoded with the
fixtures' tiny ColBERT: a small real slice.
"""

from __future__ import annotations

import json

import pytest

from pylate_clone import indexes, retrieve


@pytest.fixture(scope="module")
def encoded(fixtures_dir):
    models = pytest.importorskip("pylate_clone.models")
    data = json.loads((fixtures_dir / "outputs" / "retrieval.json").read_text())
    model = models.ColBERT(
        model_name_or_path=str(fixtures_dir / "models" / "tiny-colbert"), device="cpu"
    )
    corpus = data["corpus"]
    docs = model.encode(corpus["documents"], is_query=False, show_progress_bar=False)
    queries = model.encode(corpus["queries"], is_query=True, show_progress_bar=False)
    return corpus["documents_ids"], docs, queries


def _check_table(table, knobs, target):
    assert table[0]["p50_ms"] <= table[-1]["p50_ms"]  # sorted by latency
    assert any(row.get("exact") for row in table)
    rows = [row for row in table if not row.get("exact")]
    assert len(rows) >= 6
    for row in rows:
        assert set(row) == {*knobs, "recall", "p50_ms"}
        assert 0.0 <= row["recall"] <= 1.0 and row["p50_ms"] > 0
    good = [row for row in rows if row["recall"] >= target]
    assert good, rows
    return min(good, key=lambda row: row["p50_ms"])


@pytest.mark.slow
def test_plaid_tune_meets_target(encoded, tmp_path):
    ids, docs, queries = encoded
    index = indexes.PLAID(index_folder=tmp_path, show_progress=False)
    index.add_documents(ids, docs)
    table = index.tune(queries, target_recall=0.95, k=10)
    best = _check_table(table, ("n_ivf_probe", "n_full_scores"), 0.95)
    assert (index.n_ivf_probe, index.n_full_scores) == (
        best["n_ivf_probe"],
        best["n_full_scores"],
    )
    recall = indexes.recall_against_exact(index, queries, k=10)
    assert recall == pytest.approx(best["recall"])
    # The weakest setting in the grid loses recall: the table is informative.
    worst = indexes.recall_against_exact(
        index, queries, k=10, n_ivf_probe=1, n_full_scores=10
    )
    assert worst < 1.0


@pytest.mark.slow
def test_voyager_tune_meets_target_and_feeds_the_retriever(encoded, tmp_path):
    ids, docs, queries = encoded
    index = indexes.Voyager(index_folder=tmp_path, show_progress=False)
    index.add_documents(ids, docs)
    table = index.tune(queries, target_recall=0.95, k=10)
    best = _check_table(table, ("ef_search", "k_token"), 0.95)
    assert (index.ef_search, index.k_token) == (best["ef_search"], best["k_token"])
    assert indexes.recall_against_exact(index, queries, k=10) >= 0.95
    # The retriever picks up the tuned k_token and reaches the same recall.
    exact = indexes.Exact(
        index_folder=tmp_path, index_name="exact", show_progress=False
    )
    exact.add_documents(ids, docs)
    got = retrieve.ColBERT(index=index).retrieve(queries, k=10)
    ref = exact(queries, k=10)
    recall = indexes.recall_at_k(
        [[r["id"] for r in rs] for rs in got], [[r["id"] for r in rs] for rs in ref], 10
    )
    assert recall >= 0.9


def test_tune_rejects_bad_target(encoded, tmp_path):
    ids, docs, queries = encoded
    index = indexes.PLAID(index_folder=tmp_path, show_progress=False)
    index.add_documents(ids[:20], docs[:20])
    with pytest.raises(ValueError, match="target_recall"):
        index.tune(queries, target_recall=1.5)
