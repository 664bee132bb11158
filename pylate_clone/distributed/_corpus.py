"""A corpus as a Ray dataset of ``_id`` / ``text`` (and optional ``title``) rows."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CORPUS_FILE = "corpus.jsonl"
# Ray Data's read tasks take no CPU slot: on a small cluster every CPU may be
# held by an encoder actor, and a read waiting for a slot would never run.
READ_ARGS = {"num_cpus": 0}


def document_text(title: Any, text: Any) -> str:
    """``title + " " + text``, stripped, as the one-process command line joins them.

    A missing (None) title or text counts as empty.
    """
    return f"{title or ''} {text or ''}".strip()


def corpus_dataset(ray: Any, corpus: Any) -> Any:
    """``corpus`` as a ``ray.data.Dataset`` in file (or iteration) order.

    Parameters
    ----------
    ray
        The connected ``ray`` module.
    corpus
        A BEIR folder (holding ``corpus.jsonl``), a ``.jsonl`` path, a
        ``ray.data.Dataset`` with ``_id`` and ``text`` columns, or an iterable
        of ``{"_id", "text", ...}`` dicts (collected on the driver: texts only).

    Returns
    -------
    ray.data.Dataset
        Rows with ``_id``, ``text`` and possibly ``title`` and other columns.

    Raises
    ------
    FileNotFoundError
        A path that does not exist, or a folder without ``corpus.jsonl``.
    TypeError, ValueError
        Anything else, naming the item that is wrong.
    """
    import ray.data

    if isinstance(corpus, ray.data.Dataset):
        columns = corpus.columns() or []
        missing = [c for c in ("_id", "text") if c not in columns]
        if missing:
            raise ValueError(
                f"corpus: the dataset has no {missing[0]!r} column "
                f"(columns: {', '.join(columns)})."
            )
        return corpus
    if isinstance(corpus, (str, os.PathLike)):
        path = Path(corpus)
        if path.is_dir():
            path = path / CORPUS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"corpus {path} does not exist.")
        return ray.data.read_json(str(path), lines=True, **READ_ARGS)
    if isinstance(corpus, Iterable) and not isinstance(corpus, (bytes, dict)):
        rows = []
        for position, row in enumerate(corpus):
            if not isinstance(row, dict) or "_id" not in row or "text" not in row:
                raise TypeError(
                    f"corpus[{position}] must be a dict with '_id' and 'text', "
                    f"got {type(row).__name__}."
                )
            for field in ("title", "text"):
                value = row.get(field)
                if value is not None and not isinstance(value, str):
                    raise TypeError(
                        f"corpus[{position}] ({str(row['_id'])!r}): {field} must be "
                        f"a string, got {type(value).__name__}."
                    )
            rows.append(
                {
                    "_id": str(row["_id"]),
                    "title": row.get("title") or "",
                    "text": row["text"],
                }
            )
        if not rows:
            raise ValueError("corpus is empty: nothing to index.")
        return ray.data.from_items(rows)
    raise TypeError(
        "corpus must be a BEIR folder, a corpus.jsonl path, a ray.data.Dataset or "
        f"an iterable of dicts, got {type(corpus).__name__}."
    )
