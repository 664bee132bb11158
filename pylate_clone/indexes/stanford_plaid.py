"""Stanford PLAID (``PLAID(use_fast=False)`` in PyLate): present by name, unavailable."""

from __future__ import annotations

import logging
from typing import Any

from .compat.plaid_params import STANFORD_ONLY
from .compat.unavailable import UnavailableBackend
from .utils import reshape_embeddings

logger = logging.getLogger(__name__)

__all__ = ["StanfordPLAID", "reshape_embeddings", "stanford_plaid_from_plaid_args"]


class StanfordPLAID(UnavailableBackend):
    """PyLate's Stanford-ColBERT PLAID backend; constructing it raises ``ImportError``.

    PyLate runs Stanford's ColBERT engine here (C++ extensions compiled at run
    time, faiss k-means, pickled metadata). pylate_clone does not ship that
    engine: :class:`pylate_clone.indexes.PLAID` is the PLAID index, and
    ``PLAID(use_fast=False)`` is routed here so the reason is explicit. The
    constructor keeps PyLate's parameters.
    """

    extra = "stanford (colbert-ai)"
    reason = (
        "the Stanford ColBERT engine (colbert-ai: C++ extensions compiled at run "
        "time, faiss k-means) stores its index with torch.save pickles, which "
        "pylate_clone does not write; use indexes.PLAID (use_fast=True)"
    )
    is_end_to_end_index = True

    def __init__(
        self,
        index_folder: str = "indexes",
        index_name: str = "colbert",
        override: bool = False,
        embedding_size: int = 128,
        nbits: int = 2,
        nranks: int = 1,
        kmeans_niters: int = 4,
        index_bsize: int = 1,
        ndocs: int = 8192,
        centroid_score_threshold: float = 0.35,
        ncells: int = 8,
        search_batch_size: int = 262144,
        use_triton: bool | None = None,
    ) -> None:
        self._unavailable()

    def add_documents(
        self, documents_ids: Any, documents_embeddings: Any, batch_size: int = 2000
    ):
        """Unavailable: see the class docstring."""
        self._unavailable()

    def get_documents_embeddings(self, document_ids: Any):
        """Unavailable: see the class docstring."""
        self._unavailable()


def stanford_plaid_from_plaid_args(
    index_folder: str = "indexes",
    index_name: str = "colbert",
    override: bool = False,
    nbits: int = 2,
    kmeans_niters: int = 4,
    use_triton: bool | None = None,
    **kwargs: Any,
) -> StanfordPLAID:
    """Build the Stanford backend from ``PLAID(use_fast=False, ...)`` arguments.

    The one-line hook for ``PLAID.__init__``: when ``use_fast`` is false, return
    ``stanford_plaid_from_plaid_args(index_folder, index_name, override,
    **stanford_kwargs)``. Arguments PLAID has but Stanford PLAID lacks are
    dropped; today the call raises ``ImportError`` (see :class:`StanfordPLAID`).
    """
    options = {k: v for k, v in kwargs.items() if k in STANFORD_ONLY}
    return StanfordPLAID(
        index_folder=index_folder,
        index_name=index_name,
        override=override,
        nbits=nbits,
        kmeans_niters=kmeans_niters,
        use_triton=use_triton,
        **options,
    )
