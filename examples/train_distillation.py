"""Distil a teacher's scores into a ColBERT (from all-MiniLM-L6-v2) on SciFact train.

Teacher and candidates. There is no cross-encoder available offline, so the teacher
is built from what beats the single-vector MiniLM on SciFact: BM25 (nDCG@10 0.661
on SciFact test, above MiniLM's 0.645) plus the training relevance labels. For each
train query, the candidates (``n_ways`` documents) are its first judged-relevant
abstract followed by the top BM25 abstracts that are not judged relevant -- hard
negatives *mined from the corpus with BM25* (computed here with ``bm25s``, k1=0.9,
b=0.4). Teacher scores: 1.0 for the relevant abstract and ``0.5 * min-max
normalised BM25`` for the negatives, i.e. the labels decide the top document and
BM25 grades the negatives. The scale matches the student's scores, which
``losses.Distillation`` min-max normalises to [0, 1] per query.
``--negative-scale`` sets the teacher score of the best BM25 negative (0.5 by
default; 0 makes the teacher label-only: the relevant abstract above three equally
bad negatives).

The rows are stored as ids (``query_id``, ``document_ids``, ``scores``) and turned
into texts on the fly by ``utils.KDProcessing`` through ``Dataset.set_transform``,
as PyLate's distillation recipes do.

Full run (CPU)::

    python examples/train_distillation.py --baseline

Small slice::

    python examples/train_distillation.py --max-test-queries 30 --max-documents 300 \
        --max-train-rows 32 --max-steps 4
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from _setup import BM25, parse_args, prepare, train_and_evaluate

from pylate_clone import evaluation, losses, utils


def teacher_rows(
    data_dir: Path,
    n_ways: int,
    max_rows: int | None,
    seed: int = 0,
    negative_scale: float = 0.5,
) -> tuple[list[dict], dict[str, str], dict[str, str]]:
    """Distillation rows (ids + teacher scores) and the query / document texts."""
    documents, queries, qrels = evaluation.load_custom_dataset(str(data_dir), "train")
    corpus = {doc["id"]: doc["text"] for doc in documents}
    query_ids = sorted(qrels)
    if max_rows is not None:
        random.Random(seed).shuffle(query_ids)
        query_ids = query_ids[:max_rows]
    bm25 = BM25(corpus)
    rows = []
    for qid in query_ids:
        relevant = [doc for doc, score in qrels[qid].items() if score > 0]
        hits = [
            (doc, score)
            for doc, score in bm25.search(queries[qid], n_ways + len(relevant))
            if doc not in relevant
        ][: n_ways - 1]
        if not relevant or len(hits) < n_ways - 1:
            continue
        values = [score for _, score in hits]
        low, high = min(values), max(values)
        graded = [negative_scale * (v - low) / (high - low + 1e-9) for v in values]
        rows.append(
            {
                "query_id": qid,
                "document_ids": [relevant[0]] + [doc for doc, _ in hits],
                "scores": [1.0] + graded,
            }
        )
    return rows, queries, corpus


def main(argv: list[str] | None = None) -> dict:
    argv = list(argv or [])
    n_ways, negative_scale = 4, 0.5
    if "--n-ways" in argv:
        position = argv.index("--n-ways")
        n_ways = int(argv[position + 1])
        del argv[position : position + 2]
    if "--negative-scale" in argv:  # teacher score of the best BM25 negative
        position = argv.index("--negative-scale")
        negative_scale = float(argv[position + 1])
        del argv[position : position + 2]
    # Half an epoch (about 50 steps of 8 queries x 4 documents) keeps the full run,
    # two evaluations of the 5,183 abstracts included, within ~30 minutes on 2 CPU
    # cores.
    defaults = [
        "--output-dir", "output/colbert-minilm-scifact-kd",
        "--batch-size", "8",
        "--epochs", "0.5",
    ]  # fmt: skip
    args = parse_args(defaults + argv, description=__doc__.split("\n")[0])
    run = prepare(args)
    from datasets import Dataset

    rows, queries, corpus = teacher_rows(
        args.data_dir, n_ways, args.max_train_rows, negative_scale=negative_scale
    )
    print(f"distilling on {len(rows)} queries x {n_ways} documents", flush=True)
    used_queries = {row["query_id"] for row in rows}
    used_documents = {doc for row in rows for doc in row["document_ids"]}
    train_dataset = Dataset.from_list(rows)
    processing = utils.KDProcessing(
        queries=Dataset.from_list(
            [{"query_id": q, "text": queries[q]} for q in sorted(used_queries)]
        ),
        documents=Dataset.from_list(
            [{"document_id": d, "text": corpus[d]} for d in sorted(used_documents)]
        ),
        n_ways=n_ways,
    )
    train_dataset.set_transform(processing.transform)
    probe = [processing.map(row) for row in rows[: min(16, len(rows))]]
    return train_and_evaluate(
        run,
        train_dataset,
        losses.Distillation(run.model),
        probe=probe,
        label="distilled",
        batch_sampler="batch_sampler",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
