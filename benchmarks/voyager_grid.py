"""Voyager graph grid on SciFact 1x: storage type, M, ef_construction, graph stride.

Prints build seconds, bytes per token (graph file + float16 re-rank copy) and
recall@10 against exact MaxSim (``scifact_exhaustive.json``) for each setting,
with date and load. Run: ``nice -n 10 python benchmarks/voyager_grid.py``.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import voyager

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale_data  # noqa: E402

from pylate_clone.scores.kernels.maxsim import maxsim_flat  # noqa: E402

CACHE = scale_data.CACHE
GRID = [  # (storage, M, ef_construction, stride)
    ("E4M3", 12, 64, 1),
    ("E4M3", 12, 64, 2),
    ("E4M3", 12, 64, 3),
    ("E4M3", 12, 64, 4),
    ("Float8", 12, 64, 3),
    ("E4M3", 16, 100, 3),
]


def main() -> None:
    tokens = np.load(CACHE / "scifact_docs.flat.npy", mmap_mode="r")
    lengths = np.load(CACHE / "scifact_docs.lengths.npy")
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = scale_data.real_doc_ids()
    pos = {d: j for j, d in enumerate(ids)}
    qflat = np.load(CACHE / "scifact_queries.flat.npy")
    qlen = np.load(CACHE / "scifact_queries.lengths.npy")
    qoff = np.concatenate([[0], np.cumsum(qlen)])
    queries = [
        qflat[qoff[i] : qoff[i + 1]].astype(np.float32) for i in range(len(qlen))
    ]
    truth = json.load(open(CACHE / "scifact_exhaustive.json"))
    sample = list(range(0, len(queries), 3))
    f16 = np.asarray(tokens, dtype=np.float16)
    within = np.arange(len(tokens)) - np.repeat(offsets[:-1], lengths)
    print(
        f"{datetime.datetime.now(datetime.timezone.utc):%F %T} UTC load {os.getloadavg()}"
    )
    print(f"{len(tokens)} tokens, {len(ids)} docs, {len(sample)} queries")
    for storage, m, efc, stride in GRID:
        rows = np.flatnonzero(within % stride == 0)
        index = voyager.Index(
            voyager.Space.Cosine,
            num_dimensions=tokens.shape[1],
            M=m,
            ef_construction=efc,
            storage_data_type=getattr(voyager.StorageDataType, storage),
        )
        start = time.perf_counter()
        for s in range(0, len(rows), 200_000):
            part = rows[s : s + 200_000]
            index.add_items(
                np.asarray(tokens[part], np.float32),
                ids=part.tolist(),
                num_threads=os.cpu_count(),
            )
        build = time.perf_counter() - start
        path = Path(tempfile.mkdtemp()) / "g.voyager"
        index.save(str(path))
        gbytes = path.stat().st_size
        for k_token, ef in ((32, 64), (64, 128), (100, 200)):
            rec, lat = [], []
            for qi in sample:
                q = queries[qi]
                t0 = time.perf_counter()
                nid, _ = index.query(q, k=k_token, query_ef=ef)
                docs = np.unique(
                    np.searchsorted(offsets, np.asarray(nid).ravel(), side="right") - 1
                )
                sc = maxsim_flat([q], f16, offsets, docs.astype(np.int64))[0]
                top = docs[np.argsort(-sc)[:10]]
                lat.append(time.perf_counter() - t0)
                rec.append(
                    len(set(top.tolist()) & {pos[d] for d in truth[qi][:10]}) / 10
                )
            print(
                f"{storage:6s} M={m:2d} efc={efc:3d} stride={stride} k_token={k_token:3d} ef={ef:3d} "
                f"build {build:6.1f}s  B/token {(gbytes + 2 * f16.size) / len(tokens):6.1f} "
                f"(graph {gbytes / len(tokens):5.1f})  recall@10 {np.mean(rec):.3f}  "
                f"p50 {1000 * np.median(lat):.1f} ms",
                flush=True,
            )
        path.unlink()


if __name__ == "__main__":
    main()
