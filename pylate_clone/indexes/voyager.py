"""Token-level HNSW index: one Voyager graph per immutable segment."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..scores.kernels.maxsim import maxsim_flat
from .engine import hnsw
from .segmented.index import SegmentedIndex
from .storage.commit import (
    DEFAULT_LOCK_TIMEOUT,
    IndexFormatError,
    load_json,
    write_file,
)
from .storage.filters import check_filter
from .storage.segments import TOKENS, OpenSegment, Transaction
from .tuning import Tunable
from .utils import as_matrices, check_int, check_k, to_float32_numpy
from .utils import reshape_embeddings as reshape_embeddings

INDEX_FILE = "index.voyager"
#: Per-segment record of how its graph was built. A segment without it is of
#: the first layout (graph over every token, float32, float32 token store).
GRAPH_FILE = "graph.json"
GRAPH_FORMAT = "pylate_clone.voyager_graph"
GRAPH_VERSION = 3


def _import_voyager():
    try:
        import voyager
    except ImportError as error:  # pragma: no cover - voyager is a dependency
        raise ImportError(
            "indexes.Voyager needs the voyager package: pip install voyager"
        ) from error
    return voyager


@dataclass
class _Building:
    """A graph being written: the graph, and rows already in it (a reused copy)."""

    graph: Any
    stride: int
    skip_rows: int = 0


class Voyager(Tunable, SegmentedIndex):
    """HNSW index over document token vectors (cosine space), in segments.

    ``__call__`` returns the nearest document tokens of every query token;
    :class:`pylate_clone.retrieve.ColBERT` turns them into candidate documents
    and reranks those by exact MaxSim using :meth:`get_documents_embeddings`
    (the vectors stored float16 in each segment's ``tokens.npy``).

    Each segment has its own HNSW graph over every ``graph_stride``-th token
    of each document, kept in ``graph_storage`` precision: the graph only
    finds candidate documents, the float16 store scores them. A search
    queries every segment, merges the neighbours of each query token by
    distance and drops deleted documents. :meth:`merge` grows a copy of the
    largest segment's graph with the others' tokens; :meth:`compact` does the
    same when the largest segment has no deleted documents, and otherwise
    builds one graph without the deleted vectors. Segments of the first
    layout (a float32 graph over every token) open and search as before;
    :meth:`compact` rewrites them in the current one.

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
        HNSW candidate list size while searching (raised to ``k`` if smaller,
        so a deeper ``k_token`` also searches wider).
    show_progress
        Progress bar while adding documents.
    lock_timeout
        Seconds a writer waits for another process's write.
    k_token
        Neighbours per query token the retriever asks for when its own
        ``k_token`` is left to None (set by :meth:`tune`). None: sized to the
        collection by :meth:`scaled_k_token` at each search (100 up to a
        million live tokens, then growing like a power of their number).
    graph_stride
        The graph holds tokens ``0, s, 2s, ...`` of each document (>= 1; 1:
        every token, as PyLate); fixed at creation.
    graph_storage
        Precision of the graph's own vector copy: ``"float8"`` (8-bit fixed
        point, 1 byte per dimension), ``"e4m3"`` (8-bit float) or
        ``"float32"``; fixed at creation.

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
    storage_dtype = np.float16

    def __init__(
        self,
        index_folder: str | os.PathLike = "indexes",
        index_name: str = "colbert",
        override: bool = False,
        embedding_size: int = 128,
        M: int = 12,
        ef_construction: int = 64,
        ef_search: int = 200,
        show_progress: bool = True,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        k_token: int | None = None,
        graph_stride: int = 3,
        graph_storage: str = "float8",
    ) -> None:
        self.embedding_size = check_int("embedding_size", embedding_size)
        self.M = check_int("M", M, minimum=2)
        self.ef_construction = check_int("ef_construction", ef_construction)
        self.ef_search = check_int("ef_search", ef_search)
        self.k_token = check_int("k_token", k_token, allow_none=True)
        self.graph_stride = check_int("graph_stride", graph_stride)
        self.graph_storage = _check_storage(graph_storage, "graph_storage")
        self._voyager = _import_voyager()
        self._reuse: tuple[Path, int] | None = None
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
            "graph_stride": self.graph_stride,
            "graph_storage": self.graph_storage,
        }

    def _apply_params(self, params: dict[str, Any]) -> None:
        self.embedding_size = check_int("embedding_size", params["embedding_size"])
        self.M = check_int("M", params["M"], minimum=2)
        self.ef_construction = check_int("ef_construction", params["ef_construction"])
        # Folders of the first layout record neither: their next segments
        # take this instance's settings (and record them).
        if "graph_stride" in params:
            self.graph_stride = check_int("graph_stride", params["graph_stride"])
        if "graph_storage" in params:
            self.graph_storage = _check_storage(
                params["graph_storage"], "graph_storage"
            )
        self._dim = self.embedding_size

    def _graph_record(self) -> dict[str, Any]:
        return {
            "format": GRAPH_FORMAT,
            "version": GRAPH_VERSION,
            "graph_stride": self.graph_stride,
            "graph_storage": self.graph_storage,
            "M": self.M,
            "ef_construction": self.ef_construction,
            "dim": self.embedding_size,
        }

    def _begin_segment(self, folder: Path) -> _Building:
        v = self._voyager
        if self._reuse is not None:
            # A copy of an existing segment's graph, grown in place: its rows
            # come first in the new segment, so its labels stay valid.
            path, rows = self._reuse
            return _Building(v.Index.load(str(path)), self.graph_stride, rows)
        graph = v.Index(
            v.Space.Cosine,
            num_dimensions=self.embedding_size,
            M=self.M,
            ef_construction=self.ef_construction,
            storage_data_type=getattr(
                v.StorageDataType, hnsw.GRAPH_STORAGES[self.graph_storage]
            ),
        )
        return _Building(graph, self.graph_stride)

    def _on_batch(
        self, state: _Building, block: np.ndarray, first_row: int, lengths: np.ndarray
    ) -> None:
        rows = hnsw.sampled_rows(lengths, first_row, state.stride)
        rows = rows[rows >= state.skip_rows]
        if len(rows):
            state.graph.add_items(
                np.ascontiguousarray(block[rows - first_row]),
                ids=rows.tolist(),
                num_threads=os.cpu_count() or 1,
            )

    def _finish_segment(
        self, state: _Building, folder: Path, txn: Transaction, offsets: np.ndarray
    ) -> None:
        state.graph.save(str(folder / INDEX_FILE))
        record = {**self._graph_record(), "num_nodes": int(state.graph.num_elements)}
        write_file(folder / GRAPH_FILE, json.dumps(record).encode("utf-8"))

    def _open_segment(self, segment: OpenSegment, folder: Path) -> None:
        path = folder / INDEX_FILE
        record = None
        if (folder / GRAPH_FILE).is_file():
            record = load_json(folder / GRAPH_FILE)
            if (
                not isinstance(record, dict)
                or record.get("format") != GRAPH_FORMAT
                or record.get("version") != GRAPH_VERSION
            ):
                raise IndexFormatError(
                    f"{folder / GRAPH_FILE} is not a Voyager graph record this "
                    f"code reads (version {GRAPH_VERSION})."
                )
        try:
            graph = self._voyager.Index.load(str(path))
        except Exception as error:  # noqa: BLE001 - native errors vary
            raise IndexFormatError(
                f"{path} could not be read as a Voyager index ({error})."
            ) from None
        expected = len(segment.tokens) if record is None else record.get("num_nodes")
        if graph.num_elements != expected or (
            graph.num_dimensions != self.embedding_size
        ):
            raise IndexFormatError(f"{path} does not match {folder / TOKENS}.")
        segment.extra["graph"] = graph
        segment.extra["graph_record"] = record

    def _rewrite(self, txn: Any, segments: list[OpenSegment]) -> None:
        """One segment from ``segments``, growing the largest one's graph if it can.

        The largest segment's graph is reused when it was built with this
        folder's current settings and has no deleted documents (a graph
        cannot drop nodes, and its labels are rows that dropping documents
        would shift); its documents are written first so its labels hold.
        """
        current = self._graph_record()
        reusable = [
            s
            for s in segments
            if not len(s.deleted)
            and s.extra.get("graph_record") is not None
            and {k: s.extra["graph_record"].get(k) for k in current} == current
        ]
        if not reusable:
            super()._rewrite(txn, segments)
            return
        base = max(reusable, key=lambda s: len(s.tokens))
        order = [base] + [s for s in segments if s is not base]
        self._reuse = (self._store.path / base.name / INDEX_FILE, len(base.tokens))
        try:
            super()._rewrite(txn, order)
        finally:
            self._reuse = None

    # -- search ------------------------------------------------------------------

    def live_tokens(self) -> int:
        """Stored token vectors of the documents not deleted, over all segments."""
        self._sync()
        total = 0
        for segment in self._segments:
            total += segment.num_tokens
            if len(segment.deleted):
                total -= int(np.diff(segment.offsets)[segment.deleted].sum())
        return total

    def scaled_k_token(self, base: int = hnsw.DEFAULT_K_TOKEN) -> int:
        """``k_token`` for this collection when neither caller nor :meth:`tune` set one.

        With more tokens, a query token's ``base`` nearest neighbours fall in
        fewer of the documents that make the true top ``k``, so the depth
        grows with the live tokens (``engine.hnsw.k_token_for``).

        Parameters
        ----------
        base
            The depth of a collection of up to ``hnsw.K_TOKEN_TOKENS`` live tokens.

        Returns
        -------
        int
            ``hnsw.k_token_for(self.live_tokens(), base)``.
        """
        return hnsw.k_token_for(self.live_tokens(), base)

    def _token_hits(
        self, vectors: np.ndarray, k: int, ef: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best ``k`` live neighbours per vector across segments.

        Returns ``(segment numbers, rows, distances)``, each ``(n, k')``
        (``k' <= k``; -1 rows pad where fewer live neighbours exist).
        """
        segs, rows, dists = [], [], []
        for s, segment in enumerate(self._segments):
            r, d = hnsw.segment_neighbours(
                segment.extra["graph"],
                segment.offsets,
                segment.deleted,
                segment.live,
                vectors,
                k,
                ef,
            )
            segs.append(np.full(r.shape, s, dtype=np.int64))
            rows.append(r)
            dists.append(np.where(r >= 0, d, np.inf))
        seg, row, dist = (np.concatenate(x, axis=1) for x in (segs, rows, dists))
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        take = np.take_along_axis
        return take(seg, order, 1), take(row, order, 1), take(dist, order, 1)

    def __call__(
        self, queries_embeddings: Any, k: int = 10, filter: dict | None = None
    ) -> dict[str, list]:
        """Nearest document tokens of every query token.

        Parameters
        ----------
        queries_embeddings
            ``n`` query matrices ``(Lq_i, H)``, or one ``(Lq, H)`` matrix.
        k
            Neighbours per query token (capped at the number of live tokens).
        filter
            Metadata filter (docs/documents.md): only tokens of matching
            documents; the graph is asked for ``2 k / selectivity`` neighbours
            (at most 16 times ``k``) so that about ``k`` allowed ones remain.

        Returns
        -------
        dict
            ``documents_ids``: per query, per token, up to ``k`` neighbour
            document ids (repeating when several tokens of a document are
            neighbours); ``distances``: per query, per token, the matching
            cosine distances (``1 - cos``, smaller is closer).
        """
        k = check_k(k)
        compiled = check_filter(filter)
        self._sync()
        queries = as_matrices(queries_embeddings, "queries_embeddings", self._dim)
        if not len(self._ids):
            raise ValueError("Index is empty, add documents before querying.")
        flat = np.concatenate([to_float32_numpy(q) for q in queries])
        if compiled is None:
            seg, row, dist = self._token_hits(flat, k, self.ef_search)
        else:
            seg, row, dist = self._allowed_token_hits(flat, k, compiled)
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

    def _allowed_token_hits(
        self, vectors: np.ndarray, k: int, compiled: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_token_hits` keeping the tokens of documents matching a filter."""
        allowed = self._filter_allowed(compiled)
        share = sum(len(a) for a in allowed) / max(1, len(self._ids))
        # Twice the expected need: neighbours do not spread evenly over documents.
        wide = int(min(16 * k, np.ceil(2 * k / max(share, 1e-9))))
        seg, row, dist = self._token_hits(vectors, wide, max(self.ef_search, wide))
        ok = np.zeros(seg.shape, dtype=bool)
        for s, rows in enumerate(allowed):
            mine = seg == s
            ok[mine] = np.isin(row[mine], rows)
        dist = np.where(ok & (row >= 0), dist, np.inf)
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        take = np.take_along_axis
        return take(seg, order, 1), take(row, order, 1), take(dist, order, 1)

    # -- tuning hooks (see tuning.py) -------------------------------------------

    _knob_names = ("ef_search", "k_token")

    def _current_setting(self, k: int) -> dict[str, int]:
        return {
            "ef_search": self.ef_search,
            "k_token": self.k_token or self.scaled_k_token(),
        }

    def _tune_grid(self, k: int) -> list[dict[str, int]]:
        from .tuning import grid

        depths = (4, 8, 16, 32, 64, 100, self.scaled_k_token())
        return grid(
            ef_search=[16, 32, 64, 128, 256],
            k_token=sorted({max(k, t) for t in depths}),
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


def _check_storage(value: Any, name: str) -> str:
    if not isinstance(value, str) or value.lower() not in hnsw.GRAPH_STORAGES:
        raise ValueError(
            f"{name} must be one of {sorted(hnsw.GRAPH_STORAGES)}, got {value!r}."
        )
    return value.lower()
