"""Regenerate the PyLate 1.6.0 reference outputs used by the XTR and BEIR tests.

Run with the interpreter of a PyLate 1.6.0 install (never ours), from the
repository root, with the shared data in $PYLATE_CLONE_SHARED (default /work/shared)::

    /work/pylate-ref/bin/python scripts/make_api_fixtures.py MINILM_MODEL_DIR

Writes
* ``tests/fixtures/xtr/xtr.npz`` / ``xtr.json``: a MiniLM-based ColBERT (seeded
  random projection) encodes 12 SciFact abstracts and 4 claims; each query
  token's exact top-``k_token`` document tokens (brute-force dot products) are
  fed to ``pylate.rank.score_xtr``, whose results are stored with the vectors.
* ``tests/fixtures/api/beir_triples.json``: ``pylate.evaluation.get_beir_triples``
  on SciFact's test split, loaded the way BEIR's ``GenericDataLoader`` does
  (queries restricted to, and ordered like, the qrels), as
  ``[query, positive document id]`` rows.
"""

from __future__ import annotations

import csv
import json
import os
import random
import sys
from pathlib import Path

import numpy as np
import torch
from pylate import evaluation, models, rank

ROOT = Path(__file__).resolve().parent.parent
SCIFACT = (
    Path(os.environ.get("PYLATE_CLONE_SHARED", "/work/shared")) / "data" / "scifact"
)
K_TOKEN, K = 40, 6


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open()]


def make_xtr(model_dir: str) -> None:
    corpus = read_jsonl(SCIFACT / "corpus.jsonl")[:12]
    queries = [q["text"] for q in read_jsonl(SCIFACT / "queries.jsonl")[:4]]
    torch.manual_seed(0)
    model = models.ColBERT(
        model_name_or_path=model_dir, document_length=64, device="cpu"
    )
    docs = model.encode(
        [f"{d.get('title', '')} {d['text']}".strip() for d in corpus], is_query=False
    )
    qs = model.encode(queries, is_query=True)
    doc_ids = [d["_id"] for d in corpus]
    flat = np.concatenate(docs)
    owner = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
    results = []
    for q in qs:
        sims = q @ flat.T
        top = np.argsort(-sims, axis=1, kind="stable")[:, :K_TOKEN]
        ids = [[doc_ids[owner[j]] for j in row] for row in top]
        scores = [sims[i, row].tolist() for i, row in enumerate(top)]
        ranked = rank.score_xtr(ids, scores, k=K)
        results.append(
            {
                "ids": [r["id"] for r in ranked],
                "scores": [float(r["score"]) for r in ranked],
            }
        )
    out = ROOT / "tests/fixtures/xtr"
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out / "xtr.npz",
        documents=flat.astype(np.float32),
        document_lengths=np.array([len(d) for d in docs]),
        queries=np.concatenate(qs).astype(np.float32),
        query_lengths=np.array([len(q) for q in qs]),
    )
    (out / "xtr.json").write_text(
        json.dumps(
            {"documents_ids": doc_ids, "k_token": K_TOKEN, "k": K, "results": results},
            indent=1,
        )
        + "\n"
    )


def make_triples() -> None:
    documents = [
        {"id": d["_id"], "text": f"{d.get('title', '')} {d['text']}".strip()}
        for d in read_jsonl(SCIFACT / "corpus.jsonl")
    ]
    texts = {q["_id"]: q["text"] for q in read_jsonl(SCIFACT / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    with (SCIFACT / "qrels.tsv").open() as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    queries = {qid: texts[qid] for qid in qrels}
    random.seed(0)
    triples = evaluation.get_beir_triples(
        documents=documents, queries=queries, qrels=qrels
    )
    by_text = {d["text"]: d["id"] for d in documents}
    rows = [[q, by_text[p]] for q, p, _ in triples]
    (ROOT / "tests/fixtures/api/beir_triples.json").write_text(json.dumps(rows) + "\n")


if __name__ == "__main__":
    make_xtr(sys.argv[1])
    make_triples()
