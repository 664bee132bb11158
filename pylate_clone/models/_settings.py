"""ColBERT settings: their defaults, the keys a checkpoint stores, and precedence.

A setting (prefixes, lengths, query expansion, skiplist) comes from the first
source that gives it: the constructor argument, the checkpoint's
``config_sentence_transformers.json``, a Stanford checkpoint's
``artifact.metadata``, then the default below. An explicit ``""``, ``0``,
``False`` or ``[]`` counts as given.
"""

from __future__ import annotations

import string
from typing import Any

from ..utils.validation import check_int

DEFAULT_QUERY_PREFIX = "[Q] "
DEFAULT_DOCUMENT_PREFIX = "[D] "
STANFORD_QUERY_PREFIX = "[unused0]"
STANFORD_DOCUMENT_PREFIX = "[unused1]"
DEFAULT_QUERY_LENGTH = 32
DEFAULT_DOCUMENT_LENGTH = 180
DEFAULT_EMBEDDING_SIZE = 128

# Settings a PyLate checkpoint stores in config_sentence_transformers.json.
PYLATE_CONFIG_KEYS = (
    "query_prefix",
    "document_prefix",
    "query_length",
    "document_length",
    "attend_to_expansion_tokens",
    "skiplist_words",
    "do_query_expansion",
)


def default_settings() -> dict[str, Any]:
    """The value of every setting when no source gives one (a fresh dict)."""
    return {
        "query_prefix": DEFAULT_QUERY_PREFIX,
        "document_prefix": DEFAULT_DOCUMENT_PREFIX,
        "query_length": DEFAULT_QUERY_LENGTH,
        "document_length": DEFAULT_DOCUMENT_LENGTH,
        "attend_to_expansion_tokens": False,
        "skiplist_words": list(string.punctuation),
        "do_query_expansion": True,
    }


def check_lengths(**lengths: Any) -> None:
    """Raise ``ValueError`` naming the first length that is not an integer >= 1."""
    for name, value in lengths.items():
        check_int(name, value, minimum=1, allow_none=True)


def resolve_settings(*sources: dict[str, Any]) -> dict[str, Any]:
    """Merge ``sources`` (highest precedence first) over the defaults.

    Parameters
    ----------
    *sources
        Dicts keyed by the names in ``PYLATE_CONFIG_KEYS``; a missing key or a
        ``None`` value means "not given by this source".

    Returns
    -------
    dict
        Every setting, validated; ``attend_to_expansion_tokens`` is forced off
        without query expansion (there are no expansion tokens to attend to).
    """
    settings = {}
    for key, default in default_settings().items():
        given = (source.get(key) for source in sources)
        settings[key] = next((value for value in given if value is not None), default)
    settings["skiplist_words"] = list(settings["skiplist_words"])
    check_lengths(
        query_length=settings["query_length"],
        document_length=settings["document_length"],
    )
    if not settings["do_query_expansion"]:
        settings["attend_to_expansion_tokens"] = False
    return settings
