"""pylate_clone: ColBERT late-interaction retrieval on sentence-transformers 6.

The sub-packages mirror PyLate's, so ``import pylate_clone as pylate`` keeps PyLate
code working::

    from pylate_clone import indexes, models, retrieve
"""

from __future__ import annotations

import importlib
from typing import Any

from .__version__ import __version__

__all__ = [
    "evaluation",
    "indexes",
    "losses",
    "models",
    "rank",
    "retrieve",
    "scores",
    "utils",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # Sub-packages load lazily so ``import pylate_clone`` stays cheap, yet
    # ``pylate_clone.models`` works without an explicit sub-package import.
    if name in __all__:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
