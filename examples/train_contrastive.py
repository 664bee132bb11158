"""Fine-tune a ColBERT from all-MiniLM-L6-v2 on SciFact train with a contrastive loss.

Data: ``../shared/data/scifact`` (BEIR layout). Training rows are
``triplets_train_bm25neg.jsonl``: (train query, judged relevant abstract, a hard
negative). The negatives were *mined from the corpus with BM25* when the data was
prepared: for each train query, one abstract sampled (seed 13) from the BM25 top-10
that is not judged relevant. On top of that hard negative, every other row of the
batch is an in-batch negative (``losses.Contrastive``), and the
``NO_DUPLICATES`` batch sampler keeps a query (or abstract) from appearing twice
in a batch, which would otherwise create false negatives.

Evaluation: exhaustive MaxSim over the 5,183 abstracts for the 300 SciFact test
queries with ``PyLateInformationRetrievalEvaluator``; nDCG@10 is printed before and
after training. ``--baseline`` also scores all-MiniLM-L6-v2 as the plain
single-vector sentence-transformers model (cosine), the number to beat.

Full run (CPU)::

    python examples/train_contrastive.py --baseline

Small slice (what the CI test runs)::

    python examples/train_contrastive.py --max-test-queries 30 --max-documents 300 \
        --max-train-rows 64 --max-steps 6
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from _setup import parse_args, prepare, read_jsonl, train_and_evaluate

from pylate_clone import losses


def training_rows(data_dir: Path, max_rows: int | None, seed: int = 0) -> list[dict]:
    rows = [
        {
            "query": row["query"],
            "positive": row["positive"],
            "negative": row["negative"],
        }
        for row in read_jsonl(data_dir / "triplets_train_bm25neg.jsonl")
    ]
    if max_rows is not None:
        random.Random(seed).shuffle(rows)
        rows = rows[:max_rows]
    return rows


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv, description=__doc__.split("\n")[0])
    run = prepare(args)
    from datasets import Dataset

    rows = training_rows(args.data_dir, args.max_train_rows, args.seed)
    print(
        f"training on {len(rows)} (query, positive, BM25 negative) triplets", flush=True
    )
    if args.mini_batch_size:
        loss = losses.CachedContrastive(
            run.model, mini_batch_size=args.mini_batch_size, show_progress_bar=False
        )
    else:
        loss = losses.Contrastive(run.model)
    return train_and_evaluate(
        run,
        Dataset.from_list(rows),
        loss,
        probe=rows[: min(16, len(rows))],
        label="fine-tuned",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
