"""Evaluators and BEIR helpers on tiny-colbert and local BEIR folders."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from pylate_clone import evaluation, models, rank
from pylate_clone.evaluation.metrics import compute_metrics
from pylate_clone.evaluation.pylate_information_retrieval_evaluator import (
    pad_embeddings,
    score_blocks,
)
from pylate_clone.scores import colbert_scores


@pytest.fixture(scope="module")
def model(fixtures_dir):
    return models.ColBERT(
        model_name_or_path=str(fixtures_dir / "models" / "tiny-colbert"), device="cpu"
    )


@pytest.fixture(scope="module")
def mini_beir(tmp_path_factory, data_dir):
    """A 12-query / 80-document slice of SciFact test, in BEIR layout."""
    documents, queries, qrels = evaluation.load_beir(str(data_dir / "scifact"))
    keep_queries = list(qrels)[:12]
    relevant = {doc for qid in keep_queries for doc in qrels[qid]}
    corpus_rows = [
        json.loads(line) for line in open(data_dir / "scifact" / "corpus.jsonl")
    ]
    chosen = [row for row in corpus_rows if row["_id"] in relevant]
    chosen += [row for row in corpus_rows if row["_id"] not in relevant][
        : 80 - len(chosen)
    ]
    folder = tmp_path_factory.mktemp("mini_scifact")
    with open(folder / "corpus.jsonl", "w") as handle:
        for row in chosen:
            handle.write(json.dumps(row) + "\n")
    with open(folder / "queries.jsonl", "w") as handle:
        for qid in keep_queries:
            handle.write(json.dumps({"_id": qid, "text": queries[qid]}) + "\n")
    (folder / "qrels").mkdir()
    with open(folder / "qrels" / "test.tsv", "w") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for qid in keep_queries:
            for doc in qrels[qid]:
                handle.write(f"{qid}\t{doc}\t1\n")
    return folder


def test_load_beir_scifact_counts(data_dir):
    documents, queries, qrels = evaluation.load_beir(str(data_dir / "scifact"), "test")
    assert (len(documents), len(queries), len(qrels)) == (5183, 300, 300)
    assert set(documents[0]) == {"id", "text"}
    triples = evaluation.get_beir_triples(documents, queries, qrels, seed=0)
    assert len(triples) == 339
    assert triples[0][0] in queries  # a query id, as in PyLate
    _, train_queries, train_qrels = evaluation.load_custom_dataset(
        str(data_dir / "scifact"), "train"
    )
    assert (len(train_queries), sum(map(len, train_qrels.values()))) == (809, 919)


def test_load_beir_missing_split(mini_beir):
    with pytest.raises(FileNotFoundError, match="qrels"):
        evaluation.load_custom_dataset(str(mini_beir), split="dev")


def test_metrics_by_hand():
    qrels = {"q1": {"a": 1, "b": 1}, "q2": {"c": 2}, "q3": {"z": 1}}
    run = {
        "q1": {"a": 3.0, "x": 2.0, "b": 1.0},
        "q2": {"x": 2.0, "c": 1.0},
    }
    result = compute_metrics(
        qrels,
        run,
        ["ndcg@10", "hits@1", "hits@10", "mrr", "map", "recall@2", "precision@2"],
    )
    ndcg_q1 = (1 + 1 / 2) / (1 + 1 / torch.log2(torch.tensor(3.0)).item())
    ndcg_q2 = (2 / torch.log2(torch.tensor(3.0)).item()) / 2
    assert result["ndcg@10"] == pytest.approx((ndcg_q1 + ndcg_q2) / 3)
    assert result["hits@1"] == pytest.approx(1 / 3)
    assert result["hits@10"] == pytest.approx(3 / 3)
    assert result["mrr"] == pytest.approx((1 + 0.5) / 3)
    assert result["map"] == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 3)
    assert result["recall@2"] == pytest.approx((0.5 + 1) / 3)
    assert result["precision@2"] == pytest.approx((0.5 + 0.5) / 3)
    assert compute_metrics(qrels, run, "mrr") == result["mrr"]
    with pytest.raises(ValueError, match="Unknown metric"):
        compute_metrics(qrels, run, ["bogus@3"])


def test_score_blocks_equals_full_scores():
    torch.manual_seed(0)
    queries = torch.nn.functional.normalize(torch.randn(5, 6, 8), dim=-1)
    documents = [
        torch.nn.functional.normalize(torch.randn(n, 8), dim=-1) for n in (3, 9, 1, 7)
    ]
    full = colbert_scores(queries, pad_embeddings(documents))
    torch.testing.assert_close(score_blocks(colbert_scores, queries, documents), full)
    torch.testing.assert_close(
        score_blocks(colbert_scores, queries, documents, max_elements=50), full
    )


def test_ir_evaluator_matches_rerank_and_evaluate(model, mini_beir, tmp_path):
    documents, queries, qrels = evaluation.load_custom_dataset(str(mini_beir))
    corpus = {doc["id"]: doc["text"] for doc in documents}
    relevant = {qid: set(docs) for qid, docs in qrels.items()}
    evaluator = evaluation.PyLateInformationRetrievalEvaluator(
        queries=queries,
        corpus=corpus,
        relevant_docs=relevant,
        name="mini",
        corpus_chunk_size=30,
        write_predictions=True,
    )
    metrics = evaluator(model, output_path=str(tmp_path))
    assert evaluator.primary_metric == "mini_MaxSim_ndcg@10"
    keys = list(metrics)
    assert keys[0] == "mini_MaxSim_accuracy@1"
    for key in ("ndcg@10", "mrr@10", "map@100", "recall@10", "precision@1"):
        assert f"mini_MaxSim_{key}" in metrics
    assert (tmp_path / "Information-Retrieval_evaluation_mini_results.csv").is_file()
    assert (
        tmp_path / "Information-Retrieval_evaluation_mini_predictions_MaxSim.jsonl"
    ).is_file()

    # Same ranking as exhaustive rank.rerank over the whole corpus, and the same
    # nDCG@10 through evaluation.evaluate (binary qrels: identical definitions).
    query_ids = list(queries)
    q_emb = model.encode([queries[q] for q in query_ids], is_query=True)
    d_emb = model.encode([doc["text"] for doc in documents], is_query=False)
    reranked = rank.rerank(
        documents_ids=[[doc["id"] for doc in documents]] * len(query_ids),
        queries_embeddings=q_emb,
        documents_embeddings=[d_emb] * len(query_ids),
    )
    scores = [
        [{"id": r["id"], "score": r["score"]} for r in row[:100]] for row in reranked
    ]
    ndcg = evaluation.evaluate(scores, qrels, query_ids, metrics=["ndcg@10"])
    assert ndcg == pytest.approx(metrics["mini_MaxSim_ndcg@10"], abs=1e-6)


def test_nano_beir_evaluator_local_folder(model, mini_beir):
    evaluator = evaluation.NanoBEIREvaluator(dataset_names=[str(mini_beir)])
    metrics = evaluator(model)
    name = "Nano" + mini_beir.name.replace("_", "")
    assert f"{name}_MaxSim_ndcg@10" in metrics
    assert metrics["NanoBEIR_mean_MaxSim_ndcg@10"] == metrics[f"{name}_MaxSim_ndcg@10"]
    assert evaluator.primary_metric == "NanoBEIR_mean_MaxSim_ndcg@10"
    with pytest.raises(ValueError, match="neither"):
        evaluation.NanoBEIREvaluator(dataset_names=["not-a-dataset"])


def test_triplet_evaluator(model, tmp_path):
    evaluator = evaluation.ColBERTTripletEvaluator(
        anchors=["capital of france", "what do cats eat?"],
        positives=["Paris is the capital of France.", "Cats eat fish and meat."],
        negatives=["Bananas are rich in potassium.", "The stock market fell."],
        name="dev",
    )
    metrics = evaluator(model, output_path=str(tmp_path))
    assert set(metrics) == {"accuracy"} and 0.0 <= metrics["accuracy"] <= 1.0
    with open(tmp_path / "triplet_evaluation_dev_results.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["epoch", "steps", "accuracy"] and len(rows) == 2
    with pytest.raises(ValueError, match="same length"):
        evaluation.ColBERTTripletEvaluator(["a"], ["b"], [])


def test_distillation_evaluator(model, tmp_path):
    evaluator = evaluation.ColBERTDistillationEvaluator(
        queries=["late interaction", "coffee"],
        documents=[["ColBERT compares tokens.", "Bread."], ["Espresso.", "Tea."]],
        scores=[[10.0, 1.0], [8.0, 7.0]],
        name="kd",
    )
    metrics = evaluator(model, output_path=str(tmp_path))
    assert set(metrics) == {"kd_kl_divergence"} and metrics["kd_kl_divergence"] >= 0
    assert evaluator.primary_metric == "kd_kl_divergence"
    assert (tmp_path / "distillation_evaluation_kd_results.csv").is_file()
    with pytest.raises(ValueError, match="scores"):
        evaluation.ColBERTDistillationEvaluator(["q"], [["a", "b"]], [[1.0]])
