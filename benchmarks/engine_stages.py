"""Recall/latency grid of PLAID's search stages on a built compressed index.

Builds (once, kept in ``--folder``) an ``indexes.PLAID`` over SciFact at a
scale (``benchmarks/scale_data.py``), then for each ``n_centroid_scores`` x
``n_full_scores`` (the IVF pool scored from centroid codes, then the
candidates decoded and re-scored) measures recall@10 against exact MaxSim
(all queries, ties counted as hits as in ``index_scale.py``), p50 one query
per call (every ``--timed-every``-th query) and the QPS of all queries in
one call. Prints a Markdown table with the date and machine load. Usage::

    python benchmarks/engine_stages.py --scale 1 --nbits 4 \\
        --pool 0,1024,2048,4096 --full 64,128,256,512
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import index_scale  # noqa: E402
import scale_data  # noqa: E402

from pylate_clone import indexes  # noqa: E402
from pylate_clone.indexes.engine import search  # noqa: E402
from pylate_clone.indexes.segmented.views import segment_view  # noqa: E402


def open_index(folder: Path, scale: int, nbits: int, device: str | None):
    ids = scale_data.doc_ids(scale)
    if (folder / "manifest.json").exists() or any(folder.glob("*")):
        index = indexes.PLAID(
            index_folder=folder, override=False, show_progress=False, nbits=nbits,
            device=device,
        )  # fmt: skip
        if len(index._ids) == len(ids):
            return index, ids, None
    index = indexes.PLAID(
        index_folder=folder, override=True, show_progress=False, nbits=nbits,
        device=device,
    )  # fmt: skip
    start = time.perf_counter()
    index.add_documents(ids, scale_data.documents(scale))
    return index, ids, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--nbits", type=int, default=4)
    parser.add_argument("--folder", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--probe", type=int, default=None)
    parser.add_argument("--pool", default="0,2048,4096")
    parser.add_argument("--full", default="128,256,512")
    parser.add_argument("--timed-every", type=int, default=8)
    parser.add_argument("--no-batch", action="store_true")
    parser.add_argument(
        "--no-token-stage",
        action="store_true",
        help="rank candidates by centroid codes (the stage before the token stage)",
    )
    args = parser.parse_args()
    folder = Path(args.folder or f"/tmp/engine_stages_x{args.scale}_n{args.nbits}")
    index, ids, build_s = open_index(folder, args.scale, args.nbits, args.device)
    if build_s is not None:
        print(f"built in {build_s:.1f} s", flush=True)
    views = [segment_view(s) for s in index._segments]
    if args.no_token_stage:
        views = [dataclasses.replace(v, token_lists=None) for v in views]
    book = index._scoring_book()
    centroids = index._centroids
    probe = args.probe or search.default_n_ivf_probe(len(centroids))
    queries = scale_data.queries()
    timed = queries[:: args.timed_every]
    print(
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"load {os.getloadavg()[0]:.2f}, scale {args.scale}x, nbits {args.nbits}, "
        f"K {len(centroids)}, n_ivf_probe {probe}, device {args.device}"
    )
    print("| pool | n_full | recall@10 | p50 ms | QPS (all in one call) | load |")
    print("|---|---|---|---|---|---|")
    for pool in [int(x) for x in args.pool.split(",")]:
        for full in [int(x) for x in args.full.split(",")]:

            def run(qs, pool=pool, full=full):
                hits = search.search(
                    qs, centroids, views, 10, probe, full, book=book,
                    n_centroid_scores=pool,
                )  # fmt: skip
                return [[(s, r) for s, r, _ in h] for h in hits]

            run(timed[:2])
            times = []
            for q in timed:
                start = time.perf_counter()
                run([q])
                times.append(time.perf_counter() - start)
            start = time.perf_counter()
            found = run(queries)
            batch_s = time.perf_counter() - start
            result = {"results": [[_doc_id(index, s, r) for s, r in h] for h in found]}
            recall = index_scale._recall(result, ids, args.scale, None)
            print(
                f"| {pool} | {full} | {recall:.3f} | {1000 * np.median(times):.1f} "
                f"| {len(queries) / batch_s:.1f} | {os.getloadavg()[0]:.1f} |",
                flush=True,
            )


def _doc_id(index, s: int, r: int):
    return index._segments[s].ids[r]


if __name__ == "__main__":
    main()
