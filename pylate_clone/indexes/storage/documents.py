"""Texts and JSON metadata of a segment's documents: one read-only SQLite file.

A segment that was given texts or metadata holds ``documents.sqlite``::

    documents(row INTEGER PRIMARY KEY, document TEXT, metadata TEXT)
    keywords  FTS5 table over ``document`` (rowid = row), BM25 for hybrid search

``row`` is the document's row in the segment (its position in ``ids.json``);
rows given neither text nor metadata have no line. The file is written in the
segment's staging folder before the segment is sealed, so it is fsynced,
renamed and named by the manifest together with the vectors: the segment and
its documents are one immutable unit, committed by the one manifest swap
(there is no SQLite transaction to coordinate with it, and no journal: a
half-written file is in a staging folder no manifest names). Removals are the
segment's tombstones; an update is a removal plus a new segment, as for the
vectors. Readers open the file with ``mode=ro&immutable=1``: SQLite then takes
no locks and reads no journal, since nothing ever changes it.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from .commit import IndexFormatError
from .faults import maybe_fail

DOCUMENTS = "documents.sqlite"
#: Matching rows of this many filters are kept per open segment.
FILTER_CACHE = 32

_SCHEMA = """
CREATE TABLE documents (row INTEGER PRIMARY KEY, document TEXT, metadata TEXT);
CREATE VIRTUAL TABLE keywords USING fts5(
    document, content='documents', content_rowid='row',
    tokenize='porter unicode61 remove_diacritics 2'
);
"""
_WORD = re.compile(r"\w+", re.UNICODE)
# Query words that carry no meaning; a document's text keeps them (BM25's IDF
# makes them cheap), the query drops them so they cost no posting-list merges.
STOPWORDS = frozenset(
    "a an and are as at be but by for from has have how in into is it its of on "
    "or that the their there these this to was were what when where which who "
    "why will with".split()
)


def keyword_query(text: str) -> str | None:
    """An FTS5 query matching any word of ``text`` (None when none is left).

    Every word is a quoted FTS5 string, so no user character is read as FTS5
    syntax (``AND``, ``NEAR``, ``*``, ``:`` ...).
    """
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    words = list(dict.fromkeys(words))
    if not words:
        return None
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


class DocumentsWriter:
    """Builds a segment's ``documents.sqlite`` while its vectors are written."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / DOCUMENTS
        maybe_fail(self.path)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        # The file lives in a staging folder: no journal is needed (a crash
        # leaves a folder no manifest names); the segment is fsynced as a whole.
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(_SCHEMA)
        self._db.execute("BEGIN")
        self.count = 0

    def append(self, first_row: int, records: Sequence[tuple[Any, Any]]) -> None:
        """Store ``(text, metadata)`` of rows ``first_row, first_row + 1, ...``.

        ``metadata`` is a JSON object text (or None); pairs of two Nones are
        skipped.
        """
        lines = [
            (first_row + i, text, meta)
            for i, (text, meta) in enumerate(records)
            if text is not None or meta is not None
        ]
        self._db.executemany(
            "INSERT INTO documents(row, document, metadata) VALUES (?, ?, ?)", lines
        )
        self.count += len(lines)

    def close(self) -> None:
        """Index the texts for BM25, commit and close (the file is then final)."""
        self._db.execute("INSERT INTO keywords(keywords) VALUES ('rebuild')")
        self._db.execute("COMMIT")
        self._db.close()

    def abort(self) -> None:
        self._db.close()
        self.path.unlink(missing_ok=True)


class DocumentsReader:
    """Read-only access to one segment's ``documents.sqlite``.

    One connection, shared by the threads of a process under a lock (SQLite
    connections are not to be used by two threads at once).
    """

    def __init__(self, path: Path, num_rows: int) -> None:
        self.path = path
        self.num_rows = num_rows
        uri = f"file:{quote(str(path))}?mode=ro&immutable=1"
        try:
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._db.execute("SELECT count(*) FROM documents").fetchone()
        except sqlite3.Error as error:
            raise IndexFormatError(f"{path} could not be read ({error}).") from None
        self._lock = threading.Lock()
        self._filters: dict[str, np.ndarray] = {}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, rows: Sequence[int]) -> dict[int, tuple[str | None, Any]]:
        """``{row: (text, metadata dict)}`` of the ``rows`` that have a line."""
        out: dict[int, tuple[str | None, Any]] = {}
        rows = [int(r) for r in rows]
        with self._lock:
            for start in range(0, len(rows), 500):
                chunk = rows[start : start + 500]
                marks = ",".join("?" * len(chunk))
                cursor = self._db.execute(
                    "SELECT row, document, metadata FROM documents "
                    f"WHERE row IN ({marks})",
                    chunk,
                )
                for row, text, meta in cursor:
                    out[row] = (text, None if meta is None else json.loads(meta))
        return out

    def match(self, key: str, sql: str, params: tuple[Any, ...]) -> np.ndarray:
        """Sorted int64 rows whose metadata satisfy a compiled filter.

        ``key`` names the filter (:func:`.filters.filter_key`); the rows of
        the last :data:`FILTER_CACHE` filters are kept, the file never changes.
        """
        cached = self._filters.get(key)
        if cached is not None:
            return cached
        with self._lock:
            found = self._db.execute(
                f"SELECT row FROM documents WHERE {sql} ORDER BY row", params
            ).fetchall()
        rows = np.fromiter((r for (r,) in found), dtype=np.int64, count=len(found))
        if len(self._filters) >= FILTER_CACHE:
            self._filters.pop(next(iter(self._filters)))
        self._filters[key] = rows
        return rows

    def keywords(
        self, query: str, limit: int, where: tuple[str, tuple] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """BM25 top ``limit`` rows for an FTS5 ``query`` (:func:`keyword_query`).

        Returns ``(rows, scores)``, best first; scores are BM25 (larger is
        better). ``where`` (a compiled filter) restricts the rows.
        """
        sql = (
            "SELECT keywords.rowid, -bm25(keywords) FROM keywords "
            "WHERE keywords MATCH ?"
        )
        params: tuple[Any, ...] = (query,)
        if where is not None:
            sql += (
                f" AND keywords.rowid IN (SELECT row FROM documents WHERE {where[0]})"
            )
            params += where[1]
        sql += " ORDER BY bm25(keywords) LIMIT ?"
        with self._lock:
            found = self._db.execute(sql, (*params, int(limit))).fetchall()
        rows = np.asarray([r for r, _ in found], dtype=np.int64)
        scores = np.asarray([s for _, s in found], dtype=np.float64)
        return rows, scores
