"""BEIR helpers: load a dataset, build training triples (``evaluate`` lives in metrics)."""

from __future__ import annotations

import logging
import os
import random
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from .custom_dataset import load_custom_dataset
from .metrics import DEFAULT_METRICS, add_duplicates, evaluate

__all__ = [
    "DEFAULT_METRICS",
    "add_duplicates",
    "evaluate",
    "get_beir_triples",
    "load_beir",
]

logger = logging.getLogger(__name__)

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{}.zip"


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
    queries: Mapping[str, str] | Sequence[str],
    qrels: Mapping[str, Mapping[str, int]],
    seed: int | None = None,
) -> list[tuple[str, str, str]]:
    """Training triples ``(query, judged document text, random document text)``.

    As in PyLate, the first element is the query *id* when ``queries`` is the
    ``{query_id: text}`` dict :func:`load_beir` returns (a list pairs its items
    with the qrels in order), every judged (query, document) row yields one
    triple whatever its grade, and the third text is drawn uniformly from all
    documents.

    Parameters
    ----------
    documents
        ``[{"id", "text"}]`` as returned by :func:`load_beir`.
    queries
        ``{query_id: text}`` (its ids are used) or a list aligned with ``qrels``.
    qrels
        ``{query_id: {doc_id: grade}}``.
    seed
        Seed for the random documents (``None``: Python's global ``random``,
        like PyLate, so ``random.seed`` reproduces PyLate's draws).

    Returns
    -------
    list[tuple[str, str, str]]
        One triple per qrels row.

    Raises
    ------
    KeyError
        If a qrels row names a document that is not in ``documents``.
    """
    texts = {document["id"]: document["text"] for document in documents}
    pool = list(texts.values())
    draw = random.choice if seed is None else random.Random(seed).choice
    if isinstance(queries, Mapping):
        pairs = list(qrels.items())
    else:
        pairs = list(zip(queries, qrels.values()))
    triples = []
    for query, judged in pairs:
        for doc_id in judged:
            if doc_id not in texts:
                raise KeyError(
                    f"qrels of query {query!r} name document {doc_id!r}, which is "
                    "not in documents."
                )
            triples.append((query, texts[doc_id], draw(pool)))
    return triples
