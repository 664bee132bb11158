"""Indexes for late-interaction retrieval.

* :class:`PLAID`: end-to-end index (centroid IVF candidates, exact re-scoring
  of float16 vectors) on the segment engine.
* :class:`Voyager`: token-level HNSW index per segment (candidates reranked by
  exact MaxSim in :class:`pylate_clone.retrieve.ColBERT`).
* :class:`Exact`: end-to-end exhaustive MaxSim over the stored vectors.
* :class:`FastPlaid`: the fast-plaid-backed PLAID of the previous release.

Indexes store user ids (str or int) in pickle-free, crash-safe folders; see
``docs/indexes.md`` for the format and ``docs/reliability.md`` for what it
guarantees. Native libraries are imported only when an index is constructed.
"""

from ._idmap import DocumentId, normalize_id, normalize_ids
from ._storage import IndexFormatError
from .base import Base
from .exact import Exact
from .fast_plaid import FastPlaid
from .plaid import PLAID
from .tuning import recall_against_exact, recall_at_k
from .voyager import Voyager

__all__ = [
    "Base",
    "DocumentId",
    "Exact",
    "FastPlaid",
    "IndexFormatError",
    "PLAID",
    "Voyager",
    "normalize_id",
    "normalize_ids",
    "recall_against_exact",
    "recall_at_k",
]
