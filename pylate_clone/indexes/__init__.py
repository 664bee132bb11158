"""Indexes for late-interaction retrieval.

* :class:`Voyager`: token-level HNSW index (candidates reranked by exact MaxSim
  in :class:`pylate_clone.retrieve.ColBERT`).
* :class:`PLAID`: end-to-end index on fast-plaid (compressed, IVF-probed).
* Optional backends behind PyLate's extras: :class:`ScaNN` (``scann``),
  :class:`WARP` (``warp``); :class:`TachiomIndex` and :class:`StanfordPLAID`
  exist by name and raise ``ImportError`` explaining why (docs/backends.md).

Both store user ids (str or int) in a pickle-free, crash-safe folder layout.
The native libraries are imported only when an index is constructed.
"""

from ._storage import IndexFormatError
from .base import Base
from .migrate import migrate_pylate_index
from .plaid import PLAID, FastPlaid
from .scann import ScaNN
from .stanford_plaid import StanfordPLAID
from .tachiom import TachiomIndex
from .voyager import Voyager
from .warp import WARP

__all__ = [
    "Base",
    "FastPlaid",
    "IndexFormatError",
    "migrate_pylate_index",
    "PLAID",
    "ScaNN",
    "StanfordPLAID",
    "TachiomIndex",
    "Voyager",
    "WARP",
]
