"""MaxSim kernel throughput against the dense float32 matmul rate.

Workload: 64 queries x 100 candidates of 20-180 tokens, dim 128. Prints the
median time and achieved GFLOP/s (useful flops only: 2 * Lq * H * sum of real
document tokens) of ``rank.rerank``, of the kernel under it
(``scores.kernels.ragged.maxsim_ragged_batch``, fused numba kernel and BLAS block
kernel) and of ``scores.kernels.maxsim.maxsim_flat`` (the same documents as one
float16 store, scored by ``--flat-queries`` queries in one call, and by one
query), next to the GFLOP/s of one large dense float32 matmul. The machine is shared and noisy: every repeat times
every contender back to back (so they see the same load) and each figure is
the median of the repeats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from pylate_clone import rank
from pylate_clone.scores.kernels.maxsim import maxsim_flat
from pylate_clone.scores.kernels.ragged import maxsim_ragged_batch


def unit(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = rng.standard_normal(shape, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def interleaved_medians(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, timing them in turn on every repeat."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--flat-queries", type=int, default=8)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    dim, query_length = 128, 32
    queries = [unit(rng, (query_length, dim)) for _ in range(args.queries)]
    documents = [
        [unit(rng, (int(rng.integers(20, 181)), dim)) for _ in range(args.candidates)]
        for _ in range(args.queries)
    ]
    ids = [list(range(args.candidates)) for _ in range(args.queries)]
    tokens = sum(d.shape[0] for group in documents for d in group)
    flops = 2.0 * query_length * dim * tokens

    flat = np.concatenate([d for group in documents for d in group])
    store = flat.astype(np.float16)
    lengths = [len(d) for group in documents for d in group]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat_queries = queries[: args.flat_queries]

    n = 2048
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    seconds = interleaved_medians(
        {
            "matmul": lambda: torch.mm(a, b),
            "rerank": lambda: rank.rerank(ids, queries, documents),
            "fused": lambda: maxsim_ragged_batch(queries, documents, jit=True),
            "blocks": lambda: maxsim_ragged_batch(queries, documents, jit=False),
            "flat": lambda: maxsim_flat(flat_queries, store, offsets),
            "flat1": lambda: maxsim_flat(queries[:1], store, offsets),
        },
        args.repeats,
    )
    matmul_gflops = 2.0 * n**3 / seconds["matmul"] / 1e9
    rates = {
        "rerank": flops / seconds["rerank"] / 1e9,
        "fused": flops / seconds["fused"] / 1e9,
        "blocks": flops / seconds["blocks"] / 1e9,
        # maxsim_flat scores every document tokens against each query
        "flat": flops * len(flat_queries) / seconds["flat"] / 1e9,
        "flat1": flops / seconds["flat1"] / 1e9,
    }
    labels = {
        "rerank": "rank.rerank",
        "fused": "  its kernel: fused (numba)",
        "blocks": "  its kernel: BLAS blocks",
        "flat": f"maxsim_flat, {len(flat_queries)} queries",
        "flat1": "maxsim_flat, 1 query",
    }

    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"workload: {args.queries} queries x {args.candidates} candidates, "
        f"{tokens} document tokens, {flops / 1e9:.2f} GFLOP (rerank)"
    )
    print(
        f"dense matmul {n}x{n}x{n}      : {seconds['matmul'] * 1e3:8.1f} ms  "
        f"{matmul_gflops:7.1f} GFLOP/s"
    )
    for key, label in labels.items():
        print(
            f"{label:<27}: {seconds[key] * 1e3:8.1f} ms  {rates[key]:7.1f} GFLOP/s  "
            f"{rates[key] / matmul_gflops:5.0%} of matmul (target >= 60%)"
        )


if __name__ == "__main__":
    main()
