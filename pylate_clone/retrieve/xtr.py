"""XTR retriever: rank documents from the index's token hits, no rerank."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..indexes.voyager import Voyager
from ..rank import RerankResult
from ..rank.xtr import score_xtr
from .base import BaseRetriever, HitBatch


class XTR(BaseRetriever):
    """Retrieve with XTR scoring over a token-level index.

    Each query token fetches its ``k_token`` nearest document tokens; a document
    is scored from those hits only (:func:`pylate_clone.rank.score_xtr`), so no
    document embedding is read and the index need not store them. An
    end-to-end index (PLAID) ranks on its own, as with
    :class:`pylate_clone.retrieve.ColBERT`.

    Voyager reports cosine *distances*; they are turned into similarities
    (``1 - distance``) before scoring, because XTR adds similarities (PyLate
    adds Voyager's raw distances, which ranks the farthest documents first).

    :meth:`retrieve` takes the parameters of
    :meth:`pylate_clone.retrieve.ColBERT.retrieve`, with ``k_token``
    defaulting to 10 000 and ``batch_size`` to 1; ``subset`` with a
    token-level index raises ``NotImplementedError``.

    Parameters
    ----------
    index
        The index to search (Voyager, ScaNN, or any index whose ``__call__``
        returns ``{"documents_ids", "distances"}`` per query token).

    Examples
    --------
    >>> import tempfile
    >>> import torch
    >>> from pylate_clone import indexes, retrieve
    >>> vectors = torch.nn.functional.normalize(torch.randn(4, 3, 8), dim=-1)
    >>> voyager = indexes.Voyager(
    ...     index_folder=tempfile.mkdtemp(), embedding_size=8, show_progress=False
    ... ).add_documents(["w", "x", "y", "z"], vectors)
    >>> hits = retrieve.XTR(index=voyager).retrieve(vectors[2], k=1, k_token=12)
    >>> hits[0][0]["id"]
    'y'
    """

    default_k_token = 10_000
    # Already deep: XTR's default is not grown with the collection.
    scales_k_token = False
    default_batch_size = 1
    progress_desc = "Retrieving documents (XTR)"

    def _check_subset(self, subset: Any) -> None:
        """Refuse ``subset`` with a token-level index.

        Raises
        ------
        NotImplementedError
            XTR scores only what the index returned, so a filter would
            silently shrink the results.
        """
        if subset is not None and not self.index.is_end_to_end_index:
            raise NotImplementedError(
                "Subset filtering is not implemented for XTR retrieval yet: "
                "subset must be None with a token-level index."
            )

    def _score_batch(self, batch: HitBatch) -> list[list[RerankResult]]:
        distances = isinstance(self.index, Voyager)
        device = batch.device or "cpu"
        hits = batch.hits
        results = []
        for ids, scores in zip(hits["documents_ids"], hits["distances"]):
            if distances:
                scores = [1.0 - np.asarray(s, dtype=np.float32) for s in scores]
            results.append(score_xtr(ids, scores, k=batch.k, device=device))
        return results
