"""Mapping between user document ids and the dense internal positions of an index.

Both indexes keep their documents at dense positions ``0..n-1`` (fast-plaid's
document numbers, or the slots Voyager's token vectors point to). This module is
the single place that maps user ids to those positions, checks id types, and
serialises the mapping to JSON (never pickle), so an id given as ``"7"`` comes
back as ``"7"`` and one given as ``7`` comes back as ``7`` after a reload.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

DocumentId = Union[str, int]

_FORMAT = "pylate_clone.document_ids"


def normalize_id(value: Any) -> DocumentId:
    """Return ``value`` as a plain ``str`` or ``int`` document id.

    numpy integers and numpy strings are converted to their Python type; every
    other type (floats, bools, None, tuples...) raises ``TypeError``, because it
    would not survive a JSON round trip unchanged.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"Document ids must be str or int, got a bool: {value!r}.")
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    raise TypeError(
        f"Document ids must be str or int, got {type(value).__name__}: {value!r}."
    )


def normalize_ids(values: Any) -> list[DocumentId]:
    """Normalise a single id or a sequence of ids to a list of ``str``/``int`` ids."""
    if isinstance(values, (str, int, np.integer)) and not isinstance(values, bool):
        return [normalize_id(values)]
    if isinstance(values, np.ndarray):
        values = values.tolist()
    return [normalize_id(v) for v in values]


def describe_ids(ids: Sequence[Any], limit: int = 5) -> str:
    """Short human-readable listing of some ids, e.g. ``'a', 'b', 3 (and 7 more)``."""
    shown = ", ".join(repr(i) for i in list(ids)[:limit])
    if len(ids) > limit:
        shown += f" (and {len(ids) - limit} more)"
    return shown


class DocumentIdMap:
    """Dense, ordered mapping ``position -> user id`` with its inverse.

    Positions are contiguous: removing documents shifts later positions down,
    exactly as fast-plaid renumbers its documents after a delete.

    Parameters
    ----------
    ids
        Initial user ids, position ``i`` holding ``ids[i]``.
    """

    def __init__(self, ids: Iterable[DocumentId] = ()) -> None:
        self._ids: list[DocumentId] = []
        self._positions: dict[DocumentId, int] = {}
        self.extend(ids)

    @classmethod
    def from_stored(cls, ids: list) -> DocumentIdMap:
        """Map of ids read back from an index's own files, checked in bulk.

        Same result and errors as ``DocumentIdMap(ids)``, without a Python
        call per id on the common path (it runs on every reload).
        """
        if set(map(type, ids)) <= {str, int}:
            out = cls()
            out._positions = dict(zip(ids, range(len(ids))))
            if len(out._positions) == len(ids):
                out._ids = list(ids)
                return out
        return cls(ids)  # raises the precise error

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, document_id: object) -> bool:
        return document_id in self._positions

    @property
    def ids(self) -> list[DocumentId]:
        """User ids in position order (a copy)."""
        return list(self._ids)

    def id_at(self, position: int) -> DocumentId:
        """User id stored at ``position``."""
        return self._ids[position]

    def position(self, document_id: DocumentId) -> int:
        """Position of ``document_id``; ``KeyError`` if unknown."""
        return self._positions[document_id]

    def positions(self, documents_ids: Iterable[DocumentId]) -> list[int]:
        """Positions of known ids, silently skipping unknown ones (order kept)."""
        found = []
        for document_id in documents_ids:
            position = self._positions.get(document_id)
            if position is not None:
                found.append(position)
        return found

    def unknown(self, documents_ids: Iterable[DocumentId]) -> list[DocumentId]:
        """The ids of ``documents_ids`` that are not in the map."""
        return [i for i in documents_ids if i not in self._positions]

    def extend(self, documents_ids: Iterable[DocumentId]) -> list[int]:
        """Append new ids at the end; returns their positions.

        Raises
        ------
        ValueError
            If an id is already present or repeated in ``documents_ids``.
        """
        start = len(self._ids)
        added = []
        for document_id in documents_ids:
            document_id = normalize_id(document_id)
            if document_id in self._positions:
                raise ValueError(f"Document id {document_id!r} is already indexed.")
            self._positions[document_id] = len(self._ids)
            self._ids.append(document_id)
            added.append(document_id)
        return list(range(start, start + len(added)))

    def remove_positions(self, positions: Iterable[int]) -> np.ndarray:
        """Remove the documents at ``positions`` and compact the rest.

        Returns
        -------
        np.ndarray
            ``(n_before,)`` int64 array mapping each old position to its new one,
            ``-1`` for removed positions.
        """
        n = len(self._ids)
        keep = np.ones(n, dtype=bool)
        keep[np.asarray(list(positions), dtype=np.int64)] = False
        remap = np.full(n, -1, dtype=np.int64)
        remap[keep] = np.arange(int(keep.sum()), dtype=np.int64)
        self._ids = [i for i, k in zip(self._ids, keep.tolist()) if k]
        self._positions = {document_id: p for p, document_id in enumerate(self._ids)}
        return remap

    def copy(self) -> DocumentIdMap:
        """Independent copy."""
        return DocumentIdMap(self._ids)

    # -- persistence ---------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable form (ids keep their str/int type)."""
        return {"format": _FORMAT, "version": 1, "ids": self._ids}

    @classmethod
    def from_json(cls, data: Any, source: str | Path = "<memory>") -> DocumentIdMap:
        """Rebuild a map from :meth:`to_json` output, validating every field.

        Raises
        ------
        ValueError
            If ``data`` is not a document id mapping, naming ``source``.
        """
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"{source} is not a pylate_clone document id mapping.")
        ids = data.get("ids")
        if not isinstance(ids, list):
            raise ValueError(f"{source}: field 'ids' must be a list.")
        try:
            return cls(ids)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: invalid document ids ({error}).") from None

    def dump(self) -> bytes:
        """Serialise to UTF-8 JSON bytes."""
        return json.dumps(self.to_json(), ensure_ascii=False).encode("utf-8")
