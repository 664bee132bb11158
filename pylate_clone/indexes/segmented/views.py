"""An open segment's arrays as the engine sees them.

The storage layer hands out :class:`~..storage.segments.OpenSegment` (files,
ids, tombstones) and the engine takes :class:`~..engine.search.SegmentView`
(plain arrays); this is the one place that joins the two, so neither imports
the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..engine.compressed import ScoringBook
from ..engine.search import SegmentView
from ..storage.segments import OpenSegment

if TYPE_CHECKING:  # only for the hint: index.py does not import this module back
    from .index import SegmentedIndex


def segment_view(segment: OpenSegment) -> SegmentView:
    """The arrays of ``segment`` for search: tokens, offsets, IVF lists, live rows.

    ``indptr`` / ``docs`` (PLAID's IVF lists) and ``codes`` / ``packed`` /
    ``gains`` (PLAID's compressed vectors, and their ``device_*`` tensors)
    are the kind's extra arrays; None for a kind or a segment without them.
    """
    extra = segment.extra
    return SegmentView(
        tokens=segment.tokens,
        offsets=segment.offsets,
        indptr=extra.get("indptr"),
        docs=extra.get("docs"),
        live=segment.live,
        codes=extra.get("codes"),
        packed=extra.get("packed"),
        gains=extra.get("gains"),
        device_codes=extra.get("device_codes"),
        device_packed=extra.get("device_packed"),
        device_gains=extra.get("device_gains"),
        scales=extra.get("scales"),
        token_lists=extra.get("token_lists"),
    )


@dataclass(frozen=True)
class IndexSnapshot:
    """What a reader of a segment index sees at one committed state.

    Attributes
    ----------
    views
        One :class:`SegmentView` per live segment, in the index's order (the
        segment numbers of the engine's hits).
    num_docs
        Live documents.
    dim
        Token vector dimension; None for an index that never held a document.
    book
        The residual codec's scoring tables of a compressed index (PLAID),
        needed to score its compressed segments; None otherwise.
    """

    views: list[SegmentView]
    num_docs: int
    dim: int | None
    book: ScoringBook | None = None


def snapshot(index: SegmentedIndex) -> IndexSnapshot:
    """Reload ``index`` to its latest commit and return its arrays and sizes.

    The tuner (:mod:`..tuning`) and other whole-index readers take this instead
    of the index's private fields; the arrays are the memory maps the index
    itself searches, so nothing is copied.
    """
    with index._reload_lock:
        index._sync()
        return IndexSnapshot(
            views=[segment_view(s) for s in index._segments],
            num_docs=len(index._ids),
            dim=index._dim,
            book=index._scoring_book() if hasattr(index, "_scoring_book") else None,
        )
