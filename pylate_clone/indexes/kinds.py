"""The one registry of index kinds: the name a folder records -> its classes.

Every index folder's ``manifest.json`` records a ``kind``; the command line,
the server (:mod:`pylate_clone.resources`) and :mod:`.migrate` open a folder
through this map instead of a flag the user might get wrong. The storage
layer knows no kinds: a kind's class hands the store what it needs (its name,
its retired format versions).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .base import Base
from .exact import Exact
from .fast_plaid import FastPlaid
from .plaid import PLAID
from .voyager import Voyager

MANIFEST = "manifest.json"
DEFAULT_KIND = "plaid"

# Kind recorded on disk -> the index classes able to open it, tried in order
# (the first creates new folders; a folder of an older format may need the
# next: format-1 "plaid" folders were written by the fast-plaid backend).
KIND_CLASSES: dict[str, tuple[type[Base], ...]] = {
    "plaid": (PLAID, FastPlaid),
    "voyager": (Voyager,),
    "exact": (Exact,),
}


def kind_names() -> list[str]:
    """Kinds this build can create, in the registry's order."""
    return list(KIND_CLASSES)


def classes_for(kind: str) -> tuple[type[Base], ...]:
    """Classes that open folders of ``kind``, the creating class first.

    Raises
    ------
    KeyError
        If ``kind`` is not registered (callers word the error for their user).
    """
    return KIND_CLASSES[kind]


def recorded_kind(path: str | os.PathLike) -> Any:
    """The ``kind`` field of ``path/manifest.json``; None when there is no manifest.

    The value is returned as recorded (it may be missing, None, or a kind this
    build does not know): callers compare it with :data:`KIND_CLASSES` and word
    the error for their user.

    Raises
    ------
    OSError, ValueError
        If the manifest exists but cannot be read or is not a JSON object.
    """
    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        return None
    data = json.loads(manifest.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{manifest} is not a JSON object")
    return data.get("kind")
