"""ColBERT retriever: token-level candidates, then exact MaxSim rerank."""

from __future__ import annotations

from typing import Any

from ..indexes import normalize_id
from ..rank import RerankResult, rerank
from .base import BaseRetriever, HitBatch

#: Allowed documents (subset, filter) at most which every one is scored exactly.
EXACT_SUBSET = 1000


class ColBERT(BaseRetriever):
    """Retrieve with a ColBERT index.

    With an end-to-end index (:class:`~pylate_clone.indexes.PLAID`) the index
    ranks on its own. With a token-level index
    (:class:`~pylate_clone.indexes.Voyager`) the candidates of a query are the
    documents owning any of the ``k_token`` nearest neighbours of any of its
    tokens; they are reranked by exact MaxSim on the stored vectors.

    When ``subset`` restricts a query and the candidates inside the subset are
    fewer than ``k``, every document of the subset is scored exactly, so a
    subset holding at least ``k`` documents always yields ``k`` results. The
    same exhaustive fallback applies without subset when ``k`` is at least the
    collection size, and to every subset (or filter) of at most
    :data:`EXACT_SUBSET` documents.

    Parameters
    ----------
    index
        The index to search.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from pylate_clone import indexes, retrieve
    >>> index = indexes.Voyager(index_folder=tempfile.mkdtemp(), embedding_size=4,
    ...                         show_progress=False)
    >>> rng = np.random.default_rng(0)
    >>> docs = [rng.standard_normal((3, 4)).astype("float32") for _ in range(3)]
    >>> index = index.add_documents(["a", "b", "c"], docs)
    >>> retriever = retrieve.ColBERT(index=index)
    >>> results = retriever.retrieve([docs[1]], k=2)
    >>> results[0][0]["id"]
    'b'
    """

    default_k_token = 100
    default_batch_size = 50
    progress_desc = "Retrieving documents"

    def _score_batch(self, batch: HitBatch) -> list[list[RerankResult]]:
        index, k, subsets = self.index, batch.k, batch.subsets
        # A custom index written for PyLate may offer only __call__ and
        # get_documents_embeddings: the exhaustive fallbacks need len(), `in`
        # and documents_ids, so they apply only when the index has them.
        # (looked up on the type: reading the property would reload the index
        # between the search and the fetch of its candidates)
        kind = type(index)
        exhaustive = hasattr(kind, "__len__") and hasattr(kind, "documents_ids")
        known = index.__contains__ if hasattr(index, "__contains__") else None
        candidates: list[list[Any]] = []
        for i, per_token in enumerate(batch.hits["documents_ids"]):
            found = list(dict.fromkeys(d for token in per_token for d in token))
            if subsets is not None:
                allowed = [
                    d
                    for d in dict.fromkeys(normalize_id(s) for s in subsets[i])
                    if known is None or known(d)
                ]
                allowed_set = set(allowed)
                found = [d for d in found if d in allowed_set]
                # A small allowed set (a selective filter) is scored whole:
                # the neighbours of a few tokens rarely reach into it.
                if known is not None and (
                    len(found) < min(k, len(allowed)) or len(allowed) <= EXACT_SUBSET
                ):
                    found = allowed
            elif exhaustive and len(found) < k and k >= len(index):
                # len() only here: it may reload a newer state, whose ids
                # documents_ids then lists consistently.
                found = index.documents_ids
            candidates.append(found)
        # One query at a time: a query's candidates can hold hundreds of
        # thousands of token vectors, so a whole batch's would not fit in memory.
        results = []
        for query, found in zip(batch.queries, candidates):
            embeddings = index.get_documents_embeddings([found])
            ranked = rerank([found], [query], embeddings, device=batch.device)[0]
            results.append(ranked[:k])
        return results
