"""Exact index: segments of float16 token vectors scored by exhaustive MaxSim."""

from __future__ import annotations

import numpy as np

from ._docs import fill_doc
from .engine import search
from .segmented.end_to_end import EndToEndIndex
from .segmented.views import segment_view


@fill_doc
class Exact(EndToEndIndex):
    """End-to-end index that scores every live document with exact MaxSim.

    No approximation and no training: results equal
    :func:`pylate_clone.rank.rerank` over the whole collection (up to the
    float16 rounding of the stored vectors). Search time grows linearly with
    the number of stored token vectors, so it suits small collections, or is
    the reference that approximate indexes are measured against
    (:meth:`~pylate_clone.indexes.PLAID.tune`).

    Parameters
    ----------
    %(location)s
    show_progress
        Progress bar while adding documents.
    lock_timeout
        Seconds a writer waits for another process's write (then
        ``TimeoutError``).

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from pylate_clone import indexes
    >>> index = indexes.Exact(index_folder=tempfile.mkdtemp(), show_progress=False)
    >>> rng = np.random.default_rng(0)
    >>> docs = [rng.standard_normal((3, 4)).astype("float32") for _ in range(3)]
    >>> index = index.add_documents(["a", "b", "c"], docs)
    >>> index(docs[1], k=1)[0][0]["id"]
    'b'
    """

    # The constructor is SegmentedIndex's: Exact has no settings of its own.
    kind = "exact"

    def _search_hits(
        self, queries: list[np.ndarray], k: int, allowed: list[np.ndarray] | None
    ) -> list[list[tuple[int, int, float]]]:
        views = [segment_view(s) for s in self._segments]
        return search.exact_search(queries, views, k, allowed)
