"""Metadata filters: a ``dict`` in the vector stores' style compiled to SQL.

The compiled text holds only SQL this module writes itself and ``?``
placeholders; every key (as a JSON path) and every value travels as a
parameter, so nothing a user sends is ever spliced into a statement. The
expression is evaluated against the ``metadata`` column (a JSON object text)
of :mod:`.documents`.

Grammar (the offending part is named in every ``ValueError``)::

    filter     := {key: value} | {key: {op: value, ...}} | {"$and": [filter, ...]}
                | {"$or": [filter, ...]} | {"$not": filter}   (several entries: AND)
    op         := $eq $ne $gt $gte $lt $lte   (a JSON scalar)
                | $in $nin                    (a non-empty list of scalars)
                | $contains                   (a scalar, for list values)
    key        := letters, digits, "_" and "-"; "." separates nested keys

Semantics, as a search-service user expects them:

* a comparison matches only values of the same JSON type (``{"year":
  {"$gt": 2000}}`` never matches the string ``"2021"``; ``True`` is not ``1``);
* a document whose metadata lacks the key (or has no metadata) matches no
  condition on that key, ``$ne``, ``$nin`` and ``$not`` included: a filter
  naming no stored key matches nothing;
* ``$contains`` matches list values holding the scalar.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_KEY = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_COMPARE = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_LISTS = ("$in", "$nin")
#: ``(cache key, SQL expression, parameters)`` of a checked filter.
CompiledFilter = tuple[str, str, tuple]
_LOGIC = ("$and", "$or", "$not")
#: Most conditions (leaves) one filter may hold: SQLite's parameter limit is
#: far above, a filter this large is a client bug.
MAX_CONDITIONS = 1000


def _json_types(value: Any) -> tuple[str, ...]:
    """The ``json_type`` names a stored value must have to compare with ``value``."""
    if isinstance(value, bool):
        return ("true", "false")
    if isinstance(value, (int, float)):
        return ("integer", "real")
    return ("text",)


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"{where}: integer {value} is out of the 64-bit range.")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value} is not a finite number.")
        return value
    raise ValueError(
        f"{where} must be a string, number or boolean, got {type(value).__name__}."
    )


def _path(key: Any, where: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(
            f"{where}: key {key!r} is not a metadata key (letters, digits, '_' "
            "and '-', '.' between nested keys); operators start with '$'."
        )
    return "$" + "".join(f'."{part}"' for part in key.split("."))


class _Compiler:
    def __init__(self) -> None:
        self.params: list[Any] = []
        self.leaves = 0

    def _typed(self, path: str, value: Any, op: str) -> str:
        """``value op stored`` for stored values of ``value``'s JSON type only."""
        self.leaves += 1
        if self.leaves > MAX_CONDITIONS:
            raise ValueError(f"filter has more than {MAX_CONDITIONS} conditions.")
        types = _json_types(value)
        stored = "json_extract(metadata, ?)"
        self.params.append(path)
        self.params.extend(types)
        self.params.extend([path, value])
        marks = ", ".join("?" * len(types))
        return f"(json_type(metadata, ?) IN ({marks}) AND {stored} {op} ?)"

    def _has(self, path: str) -> str:
        self.params.append(path)
        return "(json_type(metadata, ?) IS NOT NULL)"

    def condition(self, key: str, spec: Any, where: str) -> str:
        path = _path(key, where)
        if not isinstance(spec, dict):
            return self._typed(path, _scalar(spec, where), "=")
        if not spec:
            raise ValueError(f"{where} is an empty operator dict.")
        parts = []
        for op, value in spec.items():
            at = f"{where}[{op!r}]"
            if op in _COMPARE:
                parts.append(self._typed(path, _scalar(value, at), _COMPARE[op]))
            elif op in _LISTS:
                if not isinstance(value, (list, tuple)) or not value:
                    raise ValueError(f"{at} must be a non-empty list of scalars.")
                values = [_scalar(v, f"{at}[{i}]") for i, v in enumerate(value)]
                # Parameters follow the text's order: the key test comes first.
                has = self._has(path) if op == "$nin" else None
                either = " OR ".join(self._typed(path, v, "=") for v in values)
                if has is None:
                    parts.append(f"({either})")
                else:
                    parts.append(f"({has} AND NOT ({either}))")
            elif op == "$contains":
                item = _scalar(value, at)
                self.leaves += 1
                types = _json_types(item)
                self.params.extend([path, path, *types, item])
                marks = ", ".join("?" * len(types))
                parts.append(
                    "(json_type(metadata, ?) = 'array' AND EXISTS (SELECT 1 FROM "
                    f"json_each(metadata, ?) WHERE type IN ({marks}) AND value = ?))"
                )
            else:
                raise ValueError(
                    f"{at}: unknown operator; expected one of "
                    f"{', '.join([*_COMPARE, *_LISTS, '$contains'])}."
                )
        return "(" + " AND ".join(parts) + ")"

    def node(self, spec: Any, where: str) -> str:
        if not isinstance(spec, dict):
            raise ValueError(f"{where} must be a dict, got {type(spec).__name__}.")
        if not spec:
            raise ValueError(f"{where} is an empty dict.")
        parts = []
        for key, value in spec.items():
            at = f"{where}[{key!r}]"
            if key in ("$and", "$or"):
                if not isinstance(value, (list, tuple)) or not value:
                    raise ValueError(f"{at} must be a non-empty list of filters.")
                joined = f" {key[1:].upper()} ".join(
                    self.node(v, f"{at}[{i}]") for i, v in enumerate(value)
                )
                parts.append(f"({joined})")
            elif key == "$not":
                # NOT of a condition on a missing key stays false (NULL), so a
                # document without the key never matches through $not either.
                inner = self.node(value, at)
                parts.append(f"(NOT {inner})")
            elif isinstance(key, str) and key.startswith("$"):
                raise ValueError(
                    f"{at}: unknown operator at this level; expected a metadata "
                    f"key or one of {', '.join(_LOGIC)}."
                )
            else:
                parts.append(self.condition(key, value, at))
        return "(" + " AND ".join(parts) + ")"


def compile_filter(filter: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """A checked ``filter`` as an SQL boolean expression and its parameters.

    Parameters
    ----------
    filter
        See the module docstring.

    Returns
    -------
    tuple[str, tuple]
        The expression over the ``metadata`` column, with ``?`` placeholders,
        and the parameters in order.

    Raises
    ------
    ValueError
        Naming the offending part, e.g. ``filter['year']['$gte']``.
    """
    compiler = _Compiler()
    sql = compiler.node(filter, "filter")
    # json_type() of a path with SQL NULLs behaves as "no match": wrap so that
    # NULL (a missing key under NOT) counts as false.
    return f"COALESCE({sql}, 0)", tuple(compiler.params)


def filter_key(filter: dict[str, Any]) -> str:
    """A canonical text of a checked filter, to cache its matching rows."""
    return json.dumps(filter, sort_keys=True, separators=(",", ":"))


def check_filter(filter: Any) -> CompiledFilter | None:
    """A user ``filter`` checked and compiled once (None for None).

    Raises
    ------
    TypeError
        If ``filter`` is not a dict.
    ValueError
        Naming the malformed part.
    """
    if filter is None:
        return None
    if not isinstance(filter, dict):
        raise TypeError(f"filter must be a dict or None, got {type(filter).__name__}.")
    sql, params = compile_filter(filter)
    return filter_key(filter), sql, params
