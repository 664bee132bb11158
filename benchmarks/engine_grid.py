"""Recall/latency grid of the PLAID engine, to choose its default knobs.

Builds the engine (``indexes.engine.ivf``) over one segment of SciFact at a scale
(``benchmarks/scale_data.py``), caching the codebook and lists per codebook
size under ``benchmarks/.cache/``, then for each ``n_ivf_probe`` x
``n_full_scores`` measures recall@10 against exact MaxSim (all queries) and
p50 latency (every ``--timed-every``-th query, one per call) of ``indexes.engine.search.search``,
next to the p50 of ``search.exact_search`` in the same run. Prints a
Markdown table with the date and machine load. Usage::

    python benchmarks/engine_grid.py --scale 1 --centroids 1024,2048
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale_data  # noqa: E402

from pylate_clone.indexes.engine import ivf, search  # noqa: E402


def engine(scale: int, k: int, tokens: np.ndarray, offsets: np.ndarray):
    """Cached ``(centroids, indptr, docs)`` and the build seconds (None if cached)."""
    path = scale_data.CACHE / f"engine_x{scale}_k{k}.npz"
    if path.exists():
        z = np.load(path)
        return z["centroids"], z["indptr"], z["docs"], None
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    size = min(len(tokens), ivf.default_sample_size(k))
    sample = np.asarray(tokens[np.sort(rng.choice(len(tokens), size, replace=False))])
    centroids = ivf.train_centroids(sample, k)
    trained = time.perf_counter() - start
    codes = ivf.assign(tokens, centroids)
    indptr, docs = ivf.build_lists(codes, offsets, k)
    build = time.perf_counter() - start
    print(f"K={k}: k-means {trained:.1f}s, build {build:.1f}s", flush=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, centroids=centroids, indptr=indptr, docs=docs)
    os.replace(tmp, path)
    return centroids, indptr, docs, build


def p50_ms(fn, queries) -> float:
    times = []
    for q in queries:
        start = time.perf_counter()
        fn([q])
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--centroids", default="")
    parser.add_argument("--probes", default="1,2,4,8,16")
    parser.add_argument("--full", default="64,128,256,512,1024,2048")
    parser.add_argument("--timed-every", type=int, default=4)
    args = parser.parse_args()
    tokens, lengths = scale_data.collection(args.scale)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.asarray(tokens, dtype=np.float16)  # the engine's storage dtype
    queries = scale_data.queries()
    truth = scale_data.exact_top10(args.scale)
    segment = search.SegmentView(tokens=tokens, offsets=offsets)
    timed = queries[:: args.timed_every]
    exact_p50 = p50_ms(lambda qs: search.exact_search(qs, [segment], 10), timed)
    load = os.getloadavg()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"\n{now}, scale {args.scale}x ({len(lengths):,} docs, {len(tokens):,} "
        f"tokens), load {load[0]:.1f}; exact p50 {exact_p50:.1f} ms"
    )
    print("| K | n_ivf_probe | n_full_scores | recall@10 | p50 ms | p50 / exact |")
    print("|---|---|---|---|---|---|")
    ks = [int(k) for k in args.centroids.split(",") if k] or [
        ivf.default_num_centroids(len(tokens))
    ]
    for k in ks:
        centroids, indptr, docs, _ = engine(args.scale, k, tokens, offsets)
        segment.indptr, segment.docs = indptr, docs
        for probe in [int(p) for p in args.probes.split(",")]:
            for full in [int(f) for f in args.full.split(",")]:

                def run(qs, probe=probe, full=full):
                    return search.search(qs, centroids, [segment], 10, probe, full)

                hits = run(queries)
                recall = np.mean(
                    [
                        len({r for _, r, _ in h} & set(t.tolist())) / 10
                        for h, t in zip(hits, truth)
                    ]
                )
                p50 = p50_ms(run, timed)
                print(
                    f"| {k} | {probe} | {full} | {recall:.3f} | {p50:.1f} "
                    f"| {p50 / exact_p50:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
