"""Rerank throughput: 64 queries x 100 candidates of 20-180 tokens, dim 128.

Prints the median time of ``rank.rerank`` and its achieved GFLOP/s (useful
flops only: 2 * Lq * H * sum of real document tokens) next to the GFLOP/s of
one large dense float32 matmul measured in the same run on the same threads.
The machine is shared and noisy, so every figure is a median of repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from pylate_clone import rank


def unit(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = rng.standard_normal(shape, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
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

    n = 2048
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    matmul_s = median_seconds(lambda: torch.mm(a, b), args.repeats)
    matmul_gflops = 2.0 * n**3 / matmul_s / 1e9

    rerank_s = median_seconds(
        lambda: rank.rerank(ids, queries, documents), args.repeats
    )
    rerank_gflops = flops / rerank_s / 1e9

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(
        f"workload: {args.queries} queries x {args.candidates} candidates, "
        f"{tokens} document tokens, {flops / 1e9:.2f} GFLOP"
    )
    print(
        f"dense matmul {n}x{n}x{n}: {matmul_s * 1e3:8.1f} ms  {matmul_gflops:7.1f} GFLOP/s"
    )
    print(
        f"rank.rerank            : {rerank_s * 1e3:8.1f} ms  {rerank_gflops:7.1f} GFLOP/s"
    )
    print(
        f"ratio rerank / matmul  : {rerank_gflops / matmul_gflops:.0%} (target >= 60%)"
    )


if __name__ == "__main__":
    main()
