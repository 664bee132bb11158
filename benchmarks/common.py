"""Shared helpers for the benchmarks: locating ../shared/data and reading BEIR folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PYLATE_CLONE_SHARED", ROOT.parent / "shared")) / "data"


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def beir_corpus_texts(
    name: str, limit: int | None = None
) -> tuple[list[str], list[str]]:
    """Return (ids, "title text") of a BEIR corpus under ../shared/data/<name>."""
    rows = read_jsonl(DATA / name / "corpus.jsonl")[:limit]
    ids = [row["_id"] for row in rows]
    texts = [f"{row.get('title', '')} {row.get('text', '')}".strip() for row in rows]
    return ids, texts


def beir_queries(name: str, judged_only: bool = True) -> tuple[list[str], list[str]]:
    """Return (ids, texts) of the queries, restricted to those with qrels."""
    rows = read_jsonl(DATA / name / "queries.jsonl")
    if judged_only:
        judged = set(beir_qrels(name))
        rows = [row for row in rows if row["_id"] in judged]
    return [row["_id"] for row in rows], [row["text"] for row in rows]


def beir_qrels(name: str, file_name: str = "qrels.tsv") -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(DATA / name / file_name, encoding="utf-8") as f:
        next(f)
        for line in f:
            query_id, doc_id, score = line.rstrip("\n").split("\t")[:3]
            qrels.setdefault(query_id, {})[doc_id] = int(score)
    return qrels
