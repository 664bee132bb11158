"""Token-level HNSW index: one Voyager graph per immutable segment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..scores.kernels.maxsim import maxsim_flat
from .segmented.index import SegmentedIndex
from .storage.commit import DEFAULT_LOCK_TIMEOUT, IndexFormatError
from .storage.segments import TOKENS, OpenSegment, Transaction
from .tuning import Tunable
from .utils import as_matrices, check_int, check_k, to_float32_numpy
from .utils import reshape_embeddings as reshape_embeddings

INDEX_FILE = "index.voyager"


def _import_voyager():
    try:
        import voyager
    except ImportError as error:  # pragma: no cover - voyager is a dependency
        raise ImportError(
            "indexes.Voyager needs the voyager package: pip install voyager"
        ) from error
    return voyager


class Voyager(Tunable, SegmentedIndex):
    """HNSW index over document token vectors (cosine space), in segments.

    ``__call__`` returns the nearest document tokens of every query token;
    :class:`pylate_clone.retrieve.ColBERT` turns them into candidate documents
    and reranks those by exact MaxSim using :meth:`get_documents_embeddings`
    (the vectors as given, stored float32 in each segment's ``tokens.npy``).

    Each segment has its own HNSW graph over its tokens. A search queries
    every segment, merges the neighbours of each query token by distance and
    drops deleted documents; :meth:`compact` rebuilds one graph without the
    deleted vectors.

    Parameters
    ----------
    index_folder, index_name, override
        Folder ``{index_folder}/{index_name}``; ``override`` empties it.
    embedding_size
        Dimension ``H`` of the token vectors (the stored value wins on load).
    M
        HNSW connections per node (>= 2); fixed at creation.
    ef_construction
        HNSW candidate list size while inserting; fixed at creation.
    ef_search
        HNSW candidate list size while searching (raised to ``k`` if smaller).
    show_progress
        Progress bar while adding documents.
    lock_timeout
        Seconds a writer waits for another process's write.
    k_token
        Neighbours per query token the retriever asks for when its own
        ``k_token`` is left to None (set by :meth:`tune`); None: 100.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> from pylate_clone import indexes
    >>> folder = tempfile.mkdtemp()
    >>> index = indexes.Voyager(index_folder=folder, embedding_size=4, show_progress=False)
    >>> rng = np.random.default_rng(0)
    >>> docs = [rng.standard_normal((3, 4)).astype("float32") for _ in range(2)]
    >>> index = index.add_documents(["a", "b"], docs)
    >>> hits = index(docs[0][None], k=2)
    >>> sorted(hits)
    ['distances', 'documents_ids']
    """

    is_end_to_end_index = False
    kind = "voyager"
    storage_dtype = np.float32

    def __init__(
        self,
        index_folder: str | os.PathLike = "indexes",
        index_name: str = "colbert",
        override: bool = False,
        embedding_size: int = 128,
        M: int = 64,
        ef_construction: int = 200,
        ef_search: int = 200,
        show_progress: bool = True,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        k_token: int | None = None,
    ) -> None:
        self.embedding_size = check_int("embedding_size", embedding_size)
        self.M = check_int("M", M, minimum=2)
        self.ef_construction = check_int("ef_construction", ef_construction)
        self.ef_search = check_int("ef_search", ef_search)
        self.k_token = check_int("k_token", k_token, allow_none=True)
        self._voyager = _import_voyager()
        super().__init__(
            index_folder, index_name, override, show_progress, lock_timeout
        )

    # -- kind hooks --------------------------------------------------------------

    def _params(self) -> dict[str, Any]:
        return {
            "dim": self.embedding_size,
            "embedding_size": self.embedding_size,
            "M": self.M,
            "ef_construction": self.ef_construction,
            "space": "cosine",
        }

    def _apply_params(self, params: dict[str, Any]) -> None:
        self.embedding_size = check_int("embedding_size", params["embedding_size"])
        self.M = check_int("M", params["M"], minimum=2)
        self.ef_construction = check_int("ef_construction", params["ef_construction"])
        self._dim = self.embedding_size

    def _begin_segment(self, folder: Path) -> Any:
        v = self._voyager
        return v.Index(
            v.Space.Cosine,
            num_dimensions=self.embedding_size,
            M=self.M,
            ef_construction=self.ef_construction,
        )

    def _on_batch(self, state: Any, block: np.ndarray, first_row: int) -> None:
        state.add_items(block, ids=range(first_row, first_row + len(block)))

    def _finish_segment(
        self, state: Any, folder: Path, txn: Transaction, offsets: np.ndarray
    ) -> None:
        state.save(str(folder / INDEX_FILE))

    def _open_segment(self, segment: OpenSegment, folder: Path) -> None:
        path = folder / INDEX_FILE
        try:
            graph = self._voyager.Index.load(str(path))
        except Exception as error:  # noqa: BLE001 - native errors vary
            raise IndexFormatError(
                f"{path} could not be read as a Voyager index ({error})."
            ) from None
        if graph.num_elements != len(segment.tokens) or (
            graph.num_dimensions != self.embedding_size
        ):
            raise IndexFormatError(f"{path} does not match {folder / TOKENS}.")
        segment.extra["graph"] = graph

    # -- search ------------------------------------------------------------------

    def _segment_neighbours(
        self, segment: OpenSegment, vectors: np.ndarray, k: int, ef: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(n, k')`` rows (document numbers, -1 for deleted) and distances."""
        graph = segment.extra["graph"]
        total = graph.num_elements
        deleted_tokens = 0
        if len(segment.deleted):
            lengths = (
                segment.offsets[segment.deleted + 1] - segment.offsets[segment.deleted]
            )
            deleted_tokens = int(lengths.sum())
        # Ask for more neighbours when deleted vectors may crowd the live ones.
        kk = min(total, k + min(deleted_tokens, 3 * k))
        ef = max(ef, kk)
        while True:
            try:
                ids, dist = graph.query(vectors, k=kk, query_ef=ef)
                break
            except Exception as error:  # voyager.RecallError
                if "Fewer than expected" not in str(error):
                    raise
                if ef < total:
                    ef = min(total, ef * 4)
                elif kk > 1:
                    kk = max(1, kk // 2)
                else:
                    raise
        ids = np.asarray(ids, dtype=np.int64).reshape(len(vectors), -1)
        dist = np.asarray(dist, dtype=np.float32).reshape(len(vectors), -1)
        rows = np.searchsorted(segment.offsets, ids, side="right") - 1
        if segment.live is not None:
            rows = np.where(segment.live[rows], rows, -1)
        return rows, dist

    def _token_hits(
        self, vectors: np.ndarray, k: int, ef: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best ``k`` live neighbours per vector across segments.

        Returns ``(segment numbers, rows, distances)``, each ``(n, k')``
        (``k' <= k``; -1 rows pad where fewer live neighbours exist).
        """
        segs, rows, dists = [], [], []
        for s, segment in enumerate(self._segments):
            r, d = self._segment_neighbours(segment, vectors, k, ef)
            segs.append(np.full(r.shape, s, dtype=np.int64))
            rows.append(r)
            dists.append(np.where(r >= 0, d, np.inf))
        seg, row, dist = (np.concatenate(x, axis=1) for x in (segs, rows, dists))
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        take = np.take_along_axis
        return take(seg, order, 1), take(row, order, 1), take(dist, order, 1)

    def __call__(self, queries_embeddings: Any, k: int = 10) -> dict[str, list]:
        """Nearest document tokens of every query token.

        Parameters
        ----------
        queries_embeddings
            ``n`` query matrices ``(Lq_i, H)``, or one ``(Lq, H)`` matrix.
        k
            Neighbours per query token (capped at the number of live tokens).

        Returns
        -------
        dict
            ``documents_ids``: per query, per token, up to ``k`` neighbour
            document ids (repeating when several tokens of a document are
            neighbours); ``distances``: per query, per token, the matching
            cosine distances (``1 - cos``, smaller is closer).
        """
        k = check_k(k)
        self._sync()
        queries = as_matrices(queries_embeddings, "queries_embeddings", self._dim)
        if not len(self._ids):
            raise ValueError("Index is empty, add documents before querying.")
        flat = np.concatenate([to_float32_numpy(q) for q in queries])
        seg, row, dist = self._token_hits(flat, k, self.ef_search)
        documents_ids, distances = [], []
        start = 0
        for query in queries:
            per_token, per_dist = [], []
            for t in range(start, start + len(query)):
                keep = np.isfinite(dist[t])
                per_token.append(
                    [
                        self._segments[s].ids[r]
                        for s, r in zip(seg[t][keep].tolist(), row[t][keep].tolist())
                    ]
                )
                per_dist.append(dist[t][keep])
            documents_ids.append(per_token)
            distances.append(per_dist)
            start += len(query)
        return {"documents_ids": documents_ids, "distances": distances}

    # -- tuning hooks (see tuning.py) -------------------------------------------

    _knob_names = ("ef_search", "k_token")

    def _current_setting(self, k: int) -> dict[str, int]:
        return {"ef_search": self.ef_search, "k_token": self.k_token or 100}

    def _tune_grid(self, k: int) -> list[dict[str, int]]:
        from .tuning import grid

        return grid(
            ef_search=[16, 32, 64, 128, 256],
            k_token=sorted({max(k, t) for t in (4, 8, 16, 32, 64, 100)}),
        )

    def _search_keys(
        self, query: np.ndarray, k: int, ef_search: int, k_token: int
    ) -> list[tuple[int, int]]:
        """The retriever's pipeline: token candidates, exact MaxSim, top ``k``."""
        seg, row, _ = self._token_hits(query, max(k, k_token), ef_search)
        keys = {
            (s, r) for s, r in zip(seg.ravel().tolist(), row.ravel().tolist()) if r >= 0
        }
        scored = []
        for s in sorted({s for s, _ in keys}):
            rows = np.asarray(sorted(r for ss, r in keys if ss == s), dtype=np.int64)
            segment = self._segments[s]
            values = maxsim_flat([query], segment.tokens, segment.offsets, rows)[0]
            scored.extend(zip(values.tolist(), [s] * len(rows), rows.tolist()))
        scored.sort(key=lambda item: -item[0])
        return [(s, r) for _, s, r in scored[:k]]

    def _apply_setting(self, setting: dict[str, int]) -> None:
        self.ef_search = int(setting["ef_search"])
        self.k_token = int(setting["k_token"])
