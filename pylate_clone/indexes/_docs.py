"""Docstring fragments shared by the index classes: one wording per parameter.

A docstring line that is only ``%(name)s`` is replaced by :data:`FRAGMENTS`
``[name]``, indented like the marker (:func:`fill_doc`), so that a parameter
described in several classes is described, and corrected, in one place.
"""

from __future__ import annotations

import re
import textwrap
from typing import TypeVar

T = TypeVar("T")

FRAGMENTS = {
    "location": """\
index_folder
    Root folder of the indexes.
index_name
    Sub-folder of this index, ``{index_folder}/{index_name}``.
override
    Start from an empty index even if one exists.""",
    "search": """\
Parameters
----------
queries_embeddings
    ``n`` query matrices ``(Lq_i, H)``, or one ``(Lq, H)`` matrix.
k
    Results per query (fewer when the index, or the subset, is smaller).
subset
    Allowed document ids: one list for all queries or one list per
    query. Unknown ids are ignored; an empty list allows nothing.
filter
    Metadata filter (``{"year": {"$gte": 2020}}``, see docs/documents.md):
    only documents whose stored metadata match; combined with ``subset``
    (AND).

Returns
-------
list[list[dict]]
    Per query, up to ``k`` ``{"id", "score"}`` best first.""",
}

_MARKER = re.compile(r"^( *)%\((\w+)\)s$", re.MULTILINE)


def fill_doc(obj: T) -> T:
    """Replace the ``%(name)s`` lines of ``obj``'s docstring by their fragments.

    Raises
    ------
    KeyError
        For a marker naming no fragment (a typo fails at import).
    """
    if obj.__doc__:  # None under ``python -OO``
        obj.__doc__ = _MARKER.sub(
            lambda m: textwrap.indent(FRAGMENTS[m.group(2)], m.group(1)), obj.__doc__
        )
    return obj
