"""Indexes for late-interaction retrieval.

* :class:`PLAID`: end-to-end index (centroid IVF candidates, exact re-scoring
  of float16 vectors) on the segment engine.
* :class:`Voyager`: token-level HNSW index per segment (candidates reranked by
  exact MaxSim in :class:`pylate_clone.retrieve.ColBERT`).
* :class:`Exact`: end-to-end exhaustive MaxSim over the stored vectors.
* :class:`FastPlaid`: the fast-plaid-backed PLAID of the previous release.
* Optional backends behind PyLate's extras: :class:`ScaNN` (``scann``),
  :class:`WARP` (``warp``); :class:`TachiomIndex` and :class:`StanfordPLAID`
  exist by name and raise ``ImportError`` explaining why (docs/backends.md).

Indexes store user ids (str or int) in pickle-free, crash-safe folders; see
``docs/indexes.md`` for the format and ``docs/reliability.md`` for what it
guarantees. Native libraries are imported only when an index is constructed.
"""

from .base import Base
from .exact import Exact
from .fast_plaid import FastPlaid
from .migrate import migrate_pylate_index
from .plaid import PLAID
from .scann import ScaNN
from .stanford_plaid import StanfordPLAID
from .storage.commit import IndexFormatError
from .storage.idmap import DocumentId, normalize_id, normalize_ids
from .tachiom import TachiomIndex
from .tuning import recall_against_exact, recall_at_k
from .voyager import Voyager
from .warp import WARP

__all__ = [
    "Base",
    "DocumentId",
    "Exact",
    "FastPlaid",
    "IndexFormatError",
    "migrate_pylate_index",
    "normalize_id",
    "normalize_ids",
    "PLAID",
    "recall_against_exact",
    "recall_at_k",
    "ScaNN",
    "StanfordPLAID",
    "TachiomIndex",
    "Voyager",
    "WARP",
]
