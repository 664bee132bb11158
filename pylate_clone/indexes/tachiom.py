"""TACHIOM index (PyLate's extra ``tachiom``): present by name, unavailable here."""

from __future__ import annotations

import logging
from typing import Any

from .compat.unavailable import UnavailableBackend

logger = logging.getLogger(__name__)


class TachiomIndex(UnavailableBackend):
    """PyLate's TACHIOM index; constructing it raises ``ImportError``.

    The ``tachiom`` package ships only a source release whose build downloads
    Rust crates, which cannot be done on an offline machine, so no working
    engine exists for this stack. The constructor keeps PyLate's parameters
    (same order and defaults) so PyLate code fails with that explanation
    instead of a ``NameError``.
    """

    extra = "tachiom"
    reason = (
        "the 'tachiom' package has no wheel, and its source build downloads Rust "
        "crates from the network"
    )

    def __init__(
        self,
        index_folder: str = "indexes",
        index_name: str = "tachiom",
        override: bool = False,
        center_dataset: bool = True,
        total_centroids: int | None = None,
        tac_n_iter: int = 10,
        tac_micro_threshold: int | None = None,
        tac_small_threshold: int | None = None,
        pq_sample_size: int = 10_000_000,
        pq_n_iter: int = 10,
        normalize: bool = True,
        pq_seed: int = 42,
        hnsw_m: int = 32,
        ef_construction: int = 1500,
        k_centroids: int = 20,
        k_docs_to_score: int = 500,
        ef_search: int | None = None,
        alpha: float = 0.45,
        beta: float | None = None,
        lambda_: float | None = None,
        num_threads: int = 0,
    ) -> None:
        self._unavailable()

    def add_documents(
        self,
        documents_ids: Any,
        documents_embeddings: Any,
        *,
        documents_token_ids: Any = None,
    ):
        """Unavailable: see the class docstring."""
        self._unavailable()

    def get_documents_embeddings(self, documents_ids: Any):
        """Unavailable: see the class docstring."""
        self._unavailable()
