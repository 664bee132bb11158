"""BEIR helpers: load a dataset, build training triples, score a retrieval run."""

from __future__ import annotations

import logging
import os
import random
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from .custom_dataset import load_custom_dataset
from .metrics import compute_metrics

logger = logging.getLogger(__name__)

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{}.zip"
DEFAULT_METRICS = [
    "ndcg@10",
    "hits@1",
    "hits@2",
    "hits@3",
    "hits@4",
    "hits@5",
    "hits@10",
]


def _download(dataset_name: str, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    archive = root / f"{dataset_name}.zip"
    url = BEIR_URL.format(dataset_name)
    logger.info(f"Downloading {url}")
    try:
        urllib.request.urlretrieve(url, archive)
    except OSError as error:
        raise RuntimeError(
            f"Could not download BEIR dataset {dataset_name!r} from {url} ({error}). "
            "Pass the path of a local BEIR folder instead."
        ) from error
    with zipfile.ZipFile(archive) as handle:
        handle.extractall(root)
    return root / dataset_name


def load_beir(
    dataset_name: str, split: str = "test", data_dir: str = "evaluation_datasets"
) -> tuple[list[dict[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    """Load a BEIR dataset: a local folder, a cached copy, or a download.

    Parameters
    ----------
    dataset_name
        A path to a BEIR-format folder, or a BEIR name (``"scifact"``...) looked
        up in ``data_dir`` and downloaded there if missing.
    split
        Qrels split.
    data_dir
        Cache folder for downloaded datasets.

    Returns
    -------
    tuple
        ``(documents [{"id", "text"}], queries {query_id: text},
        qrels {query_id: {doc_id: score}})``.
    """
    if os.path.isdir(dataset_name):
        return load_custom_dataset(dataset_name, split=split)
    folder = Path(data_dir) / dataset_name
    if not folder.is_dir():
        folder = _download(dataset_name, Path(data_dir))
    return load_custom_dataset(str(folder), split=split)


def get_beir_triples(
    documents: Sequence[Mapping[str, str]],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    seed: int | None = None,
) -> list[tuple[str, str, str]]:
    """Training triples ``(query, relevant document, random document)``.

    Parameters
    ----------
    documents
        ``[{"id", "text"}]`` as returned by :func:`load_beir`.
    queries
        ``{query_id: text}``.
    qrels
        ``{query_id: {doc_id: score}}``; every judged document with a positive
        score yields one triple.
    seed
        Seed for the random negatives (``None``: unseeded, like PyLate).

    Returns
    -------
    list[tuple[str, str, str]]
        One triple per relevant (query, document) pair.
    """
    texts = {document["id"]: document["text"] for document in documents}
    pool = list(texts.values())
    rng = random.Random(seed)
    triples = []
    for query_id, judged in qrels.items():
        query = queries[query_id]
        for doc_id, score in judged.items():
            if score > 0 and doc_id in texts:
                triples.append((query, texts[doc_id], rng.choice(pool)))
    return triples


def add_duplicates(queries: Sequence[str], scores: Sequence) -> list:
    """Expand ``scores`` (one list per distinct query) to one list per query."""
    first = {}
    for position, query in enumerate(dict.fromkeys(queries)):
        first[query] = scores[position]
    return [first[query] for query in queries]


def evaluate(
    scores: Sequence[Sequence[Mapping]],
    qrels: Mapping[str, Mapping[str, int]],
    queries: Sequence[str] | Mapping[str, str],
    metrics: list[str] | None = None,
) -> dict[str, float] | float:
    """Score a retrieval run against qrels (ranx metric names and definitions).

    Parameters
    ----------
    scores
        For each query, the retrieved ``[{"id": doc_id, "score": float}]``.
    qrels
        ``{query_id: {doc_id: score}}``.
    queries
        The query ids the ``scores`` belong to, in the same order (a dict is
        read as its keys).
    metrics
        Metric names, e.g. ``["map", "ndcg@10", "recall@100"]``; default
        ``ndcg@10`` and ``hits@1..5, 10``.

    Returns
    -------
    dict[str, float] | float
        ``{metric: mean value}``, or a float for a single metric.
    """
    queries = list(queries.keys()) if isinstance(queries, Mapping) else list(queries)
    if len(queries) > len(scores):
        scores = add_duplicates(queries, scores)
    if len(queries) != len(scores):
        raise ValueError(f"Got {len(scores)} result lists for {len(queries)} queries.")
    run = {
        query: {str(match["id"]): float(match["score"]) for match in matches}
        for query, matches in zip(queries, scores)
    }
    qrels = {str(q): {str(d): s for d, s in docs.items()} for q, docs in qrels.items()}
    return compute_metrics(qrels, run, metrics or DEFAULT_METRICS)
