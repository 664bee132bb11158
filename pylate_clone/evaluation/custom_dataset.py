"""Read a BEIR-format folder from disk (no download, no ``beir`` dependency)."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _first_existing(folder: Path, names: list[str], what: str) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"No {what} file in {folder}: looked for {', '.join(names)}."
    )


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Parse a BEIR qrels TSV (``query-id``, ``corpus-id``, ``score``; header line)."""
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or len(header) < 3:
            raise ValueError(
                f"{path} must start with a header 'query-id<TAB>corpus-id<TAB>score'."
            )
        for row in reader:
            if not row:
                continue
            query_id, corpus_id, score = row[0], row[1], int(float(row[2]))
            qrels.setdefault(query_id, {})[corpus_id] = score
    return qrels


def load_beir_folder(
    path: str | Path, split: str = "test"
) -> tuple[dict[str, dict], dict[str, str], dict[str, dict[str, int]]]:
    """Load a BEIR folder as BEIR's ``GenericDataLoader`` would.

    Parameters
    ----------
    path
        Folder with ``corpus.jsonl`` (``_id``, ``text``, optional ``title``),
        ``queries.jsonl`` (``_id``, ``text``) and qrels: ``qrels/{split}.tsv``,
        else ``qrels_{split}.tsv``, else (for ``split="test"``) ``qrels.tsv``.
        ``queries_{split}.jsonl`` is used when present, else ``queries.jsonl``.
    split
        Which qrels to read.

    Returns
    -------
    tuple
        ``(corpus {id: {"title", "text"}}, queries {id: text}, qrels
        {query_id: {doc_id: score}})``; only queries with qrels are kept.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"BEIR folder {folder} does not exist.")
    qrels_names = [f"qrels/{split}.tsv", f"qrels_{split}.tsv"]
    if split == "test":
        qrels_names.append("qrels.tsv")
    qrels = read_qrels(_first_existing(folder, qrels_names, f"qrels ({split})"))
    corpus = {}
    for row in _read_jsonl(_first_existing(folder, ["corpus.jsonl"], "corpus")):
        corpus[str(row["_id"])] = {"title": row.get("title", ""), "text": row["text"]}
    query_file = _first_existing(
        folder, [f"queries_{split}.jsonl", "queries.jsonl"], "queries"
    )
    all_queries = {str(row["_id"]): row["text"] for row in _read_jsonl(query_file)}
    missing = [qid for qid in qrels if qid not in all_queries]
    if missing:
        raise ValueError(
            f"{len(missing)} qrels query ids are not in {query_file.name} "
            f"(e.g. {missing[:3]})."
        )
    queries = {qid: all_queries[qid] for qid in qrels}
    return corpus, queries, qrels


def corpus_to_documents(corpus: dict[str, dict]) -> list[dict[str, str]]:
    """``{id: {"title", "text"}}`` -> ``[{"id", "text": "title text"}]``."""
    documents = []
    for doc_id, document in corpus.items():
        title = document.get("title")
        text = document.get("text", "")
        joined = f"{title} {text}" if title is not None else text
        documents.append({"id": doc_id, "text": joined.strip()})
    return documents


def load_custom_dataset(
    path: str, split: str = "test"
) -> tuple[list[dict[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    """Load a local BEIR-format dataset.

    Parameters
    ----------
    path
        Folder in BEIR layout (see :func:`load_beir_folder`).
    split
        Qrels split, e.g. ``"test"`` or ``"train"``.

    Returns
    -------
    tuple
        ``documents`` (list of ``{"id", "text"}``, title and text joined),
        ``queries`` (``{query_id: text}``) and ``qrels``
        (``{query_id: {doc_id: score}}``).
    """
    corpus, queries, qrels = load_beir_folder(path, split=split)
    return corpus_to_documents(corpus), queries, qrels
