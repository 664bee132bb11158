"""Voyager graph grid on SciFact 1x: storage type, M, ef_construction, graph stride.

Each setting is built through ``indexes.Voyager`` (so bytes per token are the
whole index folder: graph, float16 token store, ids) and searched through
``retrieve.ColBERT`` at a few ``(k_token, ef_search)`` pairs. Prints build
seconds, bytes per token, recall@10 against exact MaxSim
(``scale_data.exact_top10``) and p50 of one query per call (every 4th of the
400 scale queries), with date and load. Run:
``python benchmarks/voyager_grid.py [--grid default]``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale_data  # noqa: E402

from pylate_clone import indexes, retrieve  # noqa: E402

GRIDS = {  # (graph_storage, M, ef_construction, graph_stride)
    "default": [("float8", 12, 64, 3)],
    "storage": [
        ("float8", 12, 64, 3),
        ("e4m3", 12, 64, 3),
        ("float32", 12, 64, 3),
        ("float8", 16, 100, 3),
        ("float8", 12, 64, 2),
    ],
}
SEARCH = [(16, 64), (32, 128), (64, 128), (100, 200)]  # (k_token, ef_search)


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="storage", choices=sorted(GRIDS))
    args = parser.parse_args()
    ids = scale_data.doc_ids(1)
    docs = scale_data.documents(1)
    queries = scale_data.queries()[::4]
    truth = scale_data.exact_top10(1)[::4]
    tokens = sum(len(d) for d in docs)
    now = datetime.datetime.now(datetime.timezone.utc)
    print(f"{now:%F %T} UTC load {os.getloadavg()}")
    print(f"{tokens} tokens, {len(ids)} docs, {len(queries)} queries")
    for storage, m, efc, stride in GRIDS[args.grid]:
        folder = Path(tempfile.mkdtemp(prefix="voyager_grid_"))
        index = indexes.Voyager(
            index_folder=folder,
            M=m,
            ef_construction=efc,
            graph_stride=stride,
            graph_storage=storage,
            show_progress=False,
        )
        start = time.perf_counter()
        index.add_documents(ids, docs)
        build = time.perf_counter() - start
        per_token = _folder_bytes(folder) / tokens
        retriever = retrieve.ColBERT(index=index)
        for k_token, ef in SEARCH:
            index.ef_search = ef
            latencies, recalls = [], []
            for q, want in zip(queries, truth):
                start = time.perf_counter()
                hits = retriever.retrieve([q], k=10, k_token=k_token)[0]
                latencies.append(time.perf_counter() - start)
                wanted = {ids[j] for j in want}
                recalls.append(len(wanted & {h["id"] for h in hits}) / 10)
            print(
                f"{storage:7s} M={m:2d} efc={efc:3d} stride={stride} "
                f"k_token={k_token:3d} ef={ef:3d}  build {build:6.1f}s  "
                f"B/token {per_token:6.1f}  recall@10 {np.mean(recalls):.3f}  "
                f"p50 {1000 * np.median(latencies):.1f} ms  load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
