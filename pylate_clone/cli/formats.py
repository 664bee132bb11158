"""Files the command line reads and writes: BEIR corpora, queries, qrels, TREC runs.

* corpus: ``corpus.jsonl`` (one ``{"_id", "title", "text"}`` object per line)
  or a BEIR folder holding it; a document's text is ``title + " " + text``, as
  BEIR and PyLate's evaluation join them.
* queries: ``queries.jsonl`` (``{"_id", "text"}``) or a BEIR folder; from a
  folder, only the queries of the test qrels when the folder has them.
* qrels: a BEIR ``.tsv`` (``query-id``, ``corpus-id``, ``score``, header line)
  or a folder with ``qrels/test.tsv`` or ``qrels.tsv``.
* run: TREC format, ``qid Q0 docid rank score tag`` per line.

Every error names the file and, for a malformed line, its number.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

RUN_TAG = "pylate_clone"
QRELS_IN_FOLDER = ("qrels/test.tsv", "qrels.tsv")


def _iter_jsonl(path: Path, required: Sequence[str]) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{path}:{number}: not valid JSON ({error.msg})."
                ) from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object.")
            missing = [key for key in required if key not in row]
            if missing:
                raise ValueError(f"{path}:{number}: missing field {missing[0]!r}.")
            yield row


def _file_in(path: str | os.PathLike, name: str, what: str) -> Path:
    """``path`` itself when it is a file, else ``path/name``."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        if (path / name).is_file():
            return path / name
        raise FileNotFoundError(f"{what} folder {path} has no {name}.")
    raise FileNotFoundError(f"{what} {path} does not exist.")


def qrels_path(path: str | os.PathLike) -> Path:
    """The qrels file named by ``path``: the file itself, or a BEIR folder's.

    Raises
    ------
    FileNotFoundError
        If ``path`` is missing or is a folder without test qrels.
    """
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        for name in QRELS_IN_FOLDER:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(
            f"qrels folder {path} has neither {' nor '.join(QRELS_IN_FOLDER)}."
        )
    raise FileNotFoundError(f"qrels {path} does not exist.")


def read_corpus(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Document ids and texts of a corpus file or BEIR folder.

    Parameters
    ----------
    path
        ``corpus.jsonl`` or a folder holding it.

    Returns
    -------
    tuple[list[str], list[str]]
        ``(ids, texts)`` in file order; ids are strings.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, malformed line, duplicate id or empty corpus.
    """
    ids, texts, _ = read_corpus_records(path)
    return ids, texts


def read_corpus_records(
    path: str | os.PathLike,
) -> tuple[list[str], list[str], list[dict[str, Any] | None]]:
    """:func:`read_corpus` plus each row's other fields as its metadata.

    Returns
    -------
    tuple[list[str], list[str], list[dict | None]]
        ``(ids, texts, metadata)``: metadata holds every field of the row but
        ``_id``, ``title`` and ``text`` (None for a row with no other field).
    """
    source = _file_in(path, "corpus.jsonl", "corpus")
    corpus: dict[str, dict[str, str]] = {}
    metadata: list[dict[str, Any] | None] = []
    for row in _iter_jsonl(source, ("_id", "text")):
        doc_id = str(row["_id"])
        if doc_id in corpus:
            raise ValueError(f"{source}: document id {doc_id!r} appears twice.")
        corpus[doc_id] = {"title": row.get("title") or "", "text": row["text"] or ""}
        extra = {k: v for k, v in row.items() if k not in ("_id", "title", "text")}
        metadata.append(extra or None)
    if not corpus:
        raise ValueError(f"{source} holds no documents.")
    from ..evaluation.custom_dataset import corpus_to_documents

    documents = corpus_to_documents(corpus)
    return (
        [doc["id"] for doc in documents],
        [doc["text"] for doc in documents],
        metadata,
    )


def read_queries(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Query ids and texts of a queries file or BEIR folder.

    From a folder with test qrels (``qrels/test.tsv`` or ``qrels.tsv``) only
    the queries judged there are kept, in the order of ``queries.jsonl``.

    Parameters
    ----------
    path
        ``queries.jsonl`` or a BEIR folder.

    Returns
    -------
    tuple[list[str], list[str]]
        ``(ids, texts)``.
    """
    source = _file_in(path, "queries.jsonl", "queries")
    keep: set[str] | None = None
    if Path(path).is_dir():
        try:
            keep = set(load_qrels(path))
        except FileNotFoundError:
            keep = None
    ids, texts = [], []
    seen: set[str] = set()
    for row in _iter_jsonl(source, ("_id", "text")):
        query_id = str(row["_id"])
        if keep is not None and query_id not in keep:
            continue
        if query_id in seen:
            raise ValueError(f"{source}: query id {query_id!r} appears twice.")
        seen.add(query_id)
        ids.append(query_id)
        texts.append(str(row["text"]))
    if not ids:
        raise ValueError(f"{source} holds no queries to search.")
    return ids, texts


def load_qrels(path: str | os.PathLike) -> dict[str, dict[str, int]]:
    """Judgements ``{query_id: {doc_id: grade}}`` of a qrels file or folder."""
    # The evaluation package imports sentence-transformers: only when needed.
    from ..evaluation.custom_dataset import read_qrels

    source = qrels_path(path)
    try:
        qrels = read_qrels(source)
    except (ValueError, IndexError) as error:
        raise ValueError(f"{source}: malformed qrels ({error}).") from None
    if not qrels:
        raise ValueError(f"{source} holds no judgements.")
    return qrels


def _check_trec_token(value: str, what: str) -> str:
    if not value or any(char.isspace() for char in value):
        raise ValueError(
            f"{what} {value!r} is empty or contains whitespace: it cannot be "
            "written in TREC run format."
        )
    return value


def write_run(
    path: str | os.PathLike,
    queries_ids: Sequence[str],
    results: Sequence[Sequence[dict[str, Any]]],
    tag: str = RUN_TAG,
) -> int:
    """Write ranked results as a TREC run, atomically.

    Parameters
    ----------
    path
        Output file; its folder must exist.
    queries_ids
        One id per query.
    results
        Per query, ``[{"id", "score"}, ...]`` best first.
    tag
        Run name in the last column.

    Returns
    -------
    int
        Number of lines written.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder {path.parent} does not exist.")
    lines = []
    for query_id, ranking in zip(queries_ids, results):
        _check_trec_token(str(query_id), "query id")
        for rank, hit in enumerate(ranking, start=1):
            doc_id = _check_trec_token(str(hit["id"]), "document id")
            lines.append(
                f"{query_id} Q0 {doc_id} {rank} {float(hit['score']):.6f} {tag}"
            )
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text("\n".join(lines) + ("\n" if lines else ""), "utf-8")
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return len(lines)


def read_run(path: str | os.PathLike) -> dict[str, list[str]]:
    """Rankings of a TREC run: ``{query_id: [doc_id, ...]}`` best first.

    Documents are ordered by descending score; equal scores keep the order
    of the rank column, so a run's ranking is read the way it was written.

    Raises
    ------
    FileNotFoundError, ValueError
        A missing file, or a line without six fields or with a non-numeric
        rank or score.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"run {path} does not exist.")
    entries: dict[str, list[tuple[float, int, str]]] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 6:
                raise ValueError(
                    f"{path}:{number}: expected 'qid Q0 docid rank score tag', "
                    f"got {len(fields)} fields."
                )
            query_id, _, doc_id, rank, score, _ = fields
            try:
                entry = (-float(score), int(rank), doc_id)
            except ValueError:
                raise ValueError(
                    f"{path}:{number}: rank {rank!r} or score {score!r} is not a number."
                ) from None
            entries.setdefault(query_id, []).append(entry)
    if not entries:
        raise ValueError(f"run {path} is empty.")
    rankings = {}
    for query_id, rows in entries.items():
        ordered = list(dict.fromkeys(doc for *_, doc in sorted(rows)))
        rankings[query_id] = ordered
    return rankings
