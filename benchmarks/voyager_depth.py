"""Voyager's candidate depth at scale: build a scale's index once, sweep k_token on it.

``build`` makes our default Voyager over a scale of ``benchmarks/index_scale.py``
(all documents but 20 in one ``add_documents``, then the 20) in a folder that
is kept, and prints build s, "+20 docs" s, peak RSS and bytes per token.
``sweep`` opens that folder and, for each ``(k_token, ef_search)`` pair, runs
``retrieve.ColBERT`` over the 400 scale queries in calls of 32 (recall@10
against exact MaxSim, ties counted as in ``index_scale``) and one query per
call on every 4th query (p50). ``default`` in ``--pairs`` is the depth the
index supplies when nobody sets one. Data, queries and exact top-10 come from
``benchmarks/.cache`` (``scale_data``). Usage::

    python benchmarks/voyager_depth.py build --scale 10 --folder /tmp/vx10
    python benchmarks/voyager_depth.py sweep --scale 10 --folder /tmp/vx10 \\
        --pairs default,200:200,400:400
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import index_scale  # noqa: E402
import scale_data  # noqa: E402


def _stamp() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    load = os.getloadavg()
    return f"{now:%F %H:%M} UTC, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def build(scale: int, folder: Path) -> None:
    ids = scale_data.doc_ids(scale)
    docs = scale_data.documents(scale)
    tokens = int(sum(len(d) for d in docs))
    add, _, _ = index_scale._open_system("voyager", folder / "voyager")
    print(f"build {scale}x: {len(ids)} docs, {tokens} tokens; {_stamp()}", flush=True)
    build_s, add_s = index_scale.timed_build(add, ids, docs)
    figures = {
        "scale": scale,
        "build_s": build_s,
        "add20_s": add_s,
        "peak_rss_mb": index_scale._rss_mb(),
        "bytes_per_token": index_scale._folder_bytes(folder / "voyager") / tokens,
        "tokens": tokens,
        "when": _stamp(),
    }
    (folder / "build.json").write_text(json.dumps(figures))
    print(json.dumps(figures), flush=True)


def _pairs(text: str) -> list[tuple[int | None, int | None]]:
    """``default`` or ``k_token:ef_search`` items, comma separated."""
    pairs: list[tuple[int | None, int | None]] = []
    for item in text.split(","):
        if item == "default":
            pairs.append((None, None))
        else:
            k_token, ef = item.split(":")
            pairs.append((int(k_token), int(ef)))
    return pairs


def sweep(scale: int, folder: Path, pairs: list, p50_step: int) -> None:
    from pylate_clone import indexes, retrieve

    index = indexes.Voyager(index_folder=folder / "voyager", show_progress=False)
    retriever = retrieve.ColBERT(index=index)
    queries = scale_data.queries()
    ids = scale_data.doc_ids(scale)
    default_ef = index.ef_search
    print(f"sweep {scale}x, {len(queries)} queries; {_stamp()}", flush=True)
    for k_token, ef in pairs:
        index.ef_search = default_ef if ef is None else ef

        def run(qs, k_token=k_token):
            found = retriever.retrieve(qs, k=index_scale.K, k_token=k_token)
            return [[hit["id"] for hit in hits] for hits in found]

        results = []
        for s in range(0, len(queries), index_scale.BATCH):
            results += run(queries[s : s + index_scale.BATCH])
        recall = index_scale._recall({"results": results}, ids, scale, None)
        latencies = []
        for q in queries[::p50_step]:
            start = time.perf_counter()
            run([q])
            latencies.append(time.perf_counter() - start)
        label = "default" if k_token is None else f"{k_token}:{ef}"
        print(
            f"{scale}x k_token:ef_search {label:>9}  recall@10 {recall:.3f}  "
            f"p50 {1000 * np.median(latencies):6.1f} ms  {_stamp()}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("build", "sweep"))
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--folder", required=True, type=Path)
    parser.add_argument("--pairs", default="default,100:200,200:200,300:300,400:400")
    parser.add_argument("--p50-step", type=int, default=4)
    args = parser.parse_args()
    if args.action == "build":
        args.folder.mkdir(parents=True, exist_ok=True)
        build(args.scale, args.folder)
    else:
        sweep(args.scale, args.folder, _pairs(args.pairs), args.p50_step)


if __name__ == "__main__":
    main()
