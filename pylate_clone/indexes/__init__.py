"""Indexes for late-interaction retrieval.

* :class:`Voyager`: token-level HNSW index (candidates reranked by exact MaxSim
  in :class:`pylate_clone.retrieve.ColBERT`).
* :class:`PLAID`: end-to-end index on fast-plaid (compressed, IVF-probed).

Both store user ids (str or int) in a pickle-free, crash-safe folder layout.
The native libraries are imported only when an index is constructed.
"""

from ._storage import IndexFormatError
from .base import Base
from .plaid import PLAID, FastPlaid
from .voyager import Voyager

__all__ = ["Base", "FastPlaid", "IndexFormatError", "PLAID", "Voyager"]
