"""Write costs and build memory of the segmented indexes on a synthetic collection.

Random unit vectors (seeded), ``--docs`` documents of ``--tokens`` tokens of
dimension ``--dim``. For each ``--kind`` (one fresh process each, so peak RSS
is the build's own):

* build time and peak RSS, adding the collection either as an iterable of
  ``(ids, embeddings)`` batches (``--mode iterable``: memory bounded by one
  batch) or as one list (``--mode list``: the whole collection in RAM first);
* "+20 docs": ``add_documents`` of 20 new documents into the built index;
* "-10 docs": ``remove_documents`` of 10 documents;
  both the median of ``--repeats`` runs.

Usage::

    python benchmarks/index_writes.py --kind exact --docs 51830 --mode iterable
    python benchmarks/index_writes.py --kind exact --docs 51830 --mode list

Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pylate_clone import indexes  # noqa: E402


def batches(num_docs: int, tokens: int, dim: int, batch: int, start: int = 0):
    """Deterministic ``(ids, (n, tokens, dim) float32)`` batches of unit vectors."""
    for first in range(start, start + num_docs, batch):
        n = min(batch, start + num_docs - first)
        rng = np.random.default_rng(first)
        block = rng.standard_normal((n, tokens, dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=2, keepdims=True)
        yield [f"d{i}" for i in range(first, first + n)], block


def make(kind: str, folder: str, dim: int):
    if kind == "voyager":
        return indexes.Voyager(
            index_folder=folder, embedding_size=dim, show_progress=False
        )
    if kind == "plaid":
        return indexes.PLAID(index_folder=folder, show_progress=False)
    return indexes.Exact(index_folder=folder, show_progress=False)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--kind", default="exact", choices=["exact", "plaid", "voyager"]
    )
    parser.add_argument("--docs", type=int, default=51830)
    parser.add_argument("--tokens", type=int, default=150)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--mode", default="iterable", choices=["iterable", "list"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folder", default=None)
    parser.add_argument(
        "--seed-docs",
        type=int,
        default=0,
        help="first add this many documents in their own commit (PLAID trains "
        "its codebook on them), then stream the rest",
    )
    args = parser.parse_args()

    folder = args.folder or tempfile.mkdtemp(prefix="index_writes_")
    index = make(args.kind, folder, args.dim)
    rss_start = peak_rss_mb()
    start = time.perf_counter()
    stream = batches(args.docs, args.tokens, args.dim, args.batch)
    if args.seed_docs:
        ((seed_ids, seed_docs),) = batches(
            args.seed_docs, args.tokens, args.dim, args.seed_docs
        )
        index.add_documents(seed_ids, list(seed_docs))
        del seed_docs
        stream = batches(
            args.docs - args.seed_docs,
            args.tokens,
            args.dim,
            args.batch,
            args.seed_docs,
        )
    if args.mode == "list":
        ids, docs = [], []
        for batch_ids, block in stream:
            ids.extend(batch_ids)
            docs.extend(block)
        index.add_documents(ids, docs)
        del ids, docs
    else:
        index.add_documents(stream)
    build_s = time.perf_counter() - start
    build_rss = peak_rss_mb()

    add_s, remove_s = [], []
    for r in range(args.repeats):
        ((new_ids, new_docs),) = batches(20, args.tokens, args.dim, 20, 10**7 + 20 * r)
        start = time.perf_counter()
        index.add_documents(new_ids, list(new_docs))
        add_s.append(time.perf_counter() - start)
        gone = [f"d{i}" for i in range(10 * r, 10 * r + 10)]
        start = time.perf_counter()
        index.remove_documents(gone)
        remove_s.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "kind": args.kind,
                "mode": args.mode,
                "docs": args.docs,
                "tokens_per_doc": args.tokens,
                "dim": args.dim,
                "build_s": round(build_s, 1),
                "peak_rss_mb_before_build": round(rss_start),
                "peak_rss_mb_build": round(build_rss),
                "add20_s": [round(x, 3) for x in add_s],
                "add20_median_s": round(statistics.median(add_s), 3),
                "remove10_s": [round(x, 3) for x in remove_s],
                "remove10_median_s": round(statistics.median(remove_s), 3),
                "seed_docs": args.seed_docs,
                "segments": index.num_segments,
                "load_avg": os.getloadavg(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
