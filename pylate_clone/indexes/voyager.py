"""Token-level HNSW index on Voyager, with exact MaxSim reranking by the retriever."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import tqdm

from ._idmap import DocumentId, normalize_ids
from ._storage import IndexFormatError, crash_point
from .base import Base
from .utils import (
    as_matrices,
    check_documents,
    check_int,
    check_k,
    embedding_dim,
    to_float32_numpy,
)

INDEX_FILE = "index.voyager"
VECTORS_FILE = "vector_documents.npy"


def _import_voyager():
    try:
        import voyager
    except ImportError as error:  # pragma: no cover - voyager is a dependency
        raise ImportError(
            "indexes.Voyager needs the voyager package: pip install voyager"
        ) from error
    return voyager


class Voyager(Base):
    """HNSW index over document token vectors (cosine space).

    ``__call__`` returns the nearest document tokens of every query token;
    :class:`pylate_clone.retrieve.ColBERT` turns them into candidate documents
    and reranks those by exact MaxSim using :meth:`get_documents_embeddings`.

    Parameters
    ----------
    index_folder
        Root folder of the indexes.
    index_name
        Sub-folder of this index, ``{index_folder}/{index_name}``.
    override
        Start from an empty index even if one exists.
    embedding_size
        Dimension ``H`` of the token vectors. Ignored (with the stored value
        used) when an existing index is loaded.
    M
        HNSW connections per node (>= 2); fixed at creation.
    ef_construction
        HNSW candidate list size while inserting; fixed at creation.
    ef_search
        HNSW candidate list size while searching (raised to ``k`` if smaller).
    show_progress
        Show a progress bar while adding documents.

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
    ) -> None:
        self.embedding_size = check_int("embedding_size", embedding_size)
        self.M = check_int("M", M, minimum=2)
        self.ef_construction = check_int("ef_construction", ef_construction)
        self.ef_search = check_int("ef_search", ef_search)
        self.show_progress = bool(show_progress)
        self._voyager = _import_voyager()
        super().__init__(index_folder, index_name, override)
        self._vector_docs = np.empty(0, dtype=np.int64)
        self._index: Any = None
        self._doc_vectors: tuple[np.ndarray, np.ndarray] | None = None
        self._open()

    # -- state -----------------------------------------------------------------

    def _params(self) -> dict[str, Any]:
        return {
            "embedding_size": self.embedding_size,
            "M": self.M,
            "ef_construction": self.ef_construction,
            "space": "cosine",
        }

    def _new_index(self) -> Any:
        v = self._voyager
        return v.Index(
            v.Space.Cosine,
            num_dimensions=self.embedding_size,
            M=self.M,
            ef_construction=self.ef_construction,
        )

    def _create_empty(self) -> None:
        self._index = self._new_index()
        self._vector_docs = np.empty(0, dtype=np.int64)
        self._doc_vectors = None
        self._save()

    def _load_generation(self, folder: Path, manifest: dict[str, Any]) -> None:
        params = manifest["params"]
        try:
            self.embedding_size = check_int("embedding_size", params["embedding_size"])
            self.M = check_int("M", params["M"], minimum=2)
            self.ef_construction = check_int(
                "ef_construction", params["ef_construction"]
            )
        except (KeyError, ValueError) as error:
            raise IndexFormatError(
                f"{self._store.manifest_path}: bad Voyager parameters ({error})."
            ) from None
        index_path = folder / INDEX_FILE
        if INDEX_FILE not in manifest["files"] and len(self._ids) == 0:
            # An empty index is committed without a Voyager file (see _save).
            self._index = self._new_index()
            self._vector_docs = np.empty(0, dtype=np.int64)
            self._doc_vectors = None
            return
        try:
            index = self._voyager.Index.load(str(index_path))
        except Exception as error:  # noqa: BLE001 - native errors vary
            raise IndexFormatError(
                f"{index_path} could not be read as a Voyager index ({error})."
            ) from None
        vectors_path = folder / VECTORS_FILE
        try:
            vector_docs = np.load(vectors_path, allow_pickle=False)
        except Exception as error:  # noqa: BLE001
            raise IndexFormatError(
                f"{vectors_path} could not be read ({error})."
            ) from None
        if (
            vector_docs.ndim != 1
            or vector_docs.dtype != np.int64
            or len(vector_docs) != index.num_elements
            or index.num_dimensions != self.embedding_size
            or (len(vector_docs) and vector_docs.max() >= len(self._ids))
        ):
            raise IndexFormatError(
                f"{vectors_path} does not match {index_path} and the id mapping."
            )
        self._index = index
        self._vector_docs = vector_docs
        self._doc_vectors = None

    def _save(self) -> None:
        """Commit the in-memory state as a new generation."""
        if len(self._ids) == 0:
            # voyager cannot reload an index file without elements: an empty
            # index is stored as no file, and deleted leftovers are dropped.
            self._index = self._new_index()
            self._vector_docs = np.empty(0, dtype=np.int64)
            self._doc_vectors = None
        with self._store.write() as staging:
            if len(self._vector_docs):
                self._index.save(str(staging / INDEX_FILE))
            np.save(staging / VECTORS_FILE, self._vector_docs, allow_pickle=False)
            crash_point("voyager_payload_written")
            self._store.commit(staging, self._ids, self._params())

    def _reload(self) -> None:
        """Restore the in-memory state from disk after a failed write."""
        store = self._store
        store.read_manifest()
        self._ids = store.load_ids()
        self._load_generation(store.current, store.manifest)

    def _document_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Voyager vector ids grouped by document: ``(vector_ids, offsets)``."""
        if self._doc_vectors is None:
            live = np.flatnonzero(self._vector_docs >= 0)
            owners = self._vector_docs[live]
            order = np.argsort(owners, kind="stable")
            counts = np.bincount(owners, minlength=len(self._ids))
            offsets = np.concatenate([[0], np.cumsum(counts)])
            self._doc_vectors = (live[order], offsets)
        return self._doc_vectors

    def _drop_positions(self, positions: list[int]) -> None:
        """Mark the vectors of documents at ``positions`` deleted and compact ids."""
        if not positions:
            return
        vector_ids, offsets = self._document_vectors()
        for position in positions:
            for vector_id in vector_ids[offsets[position] : offsets[position + 1]]:
                self._index.mark_deleted(int(vector_id))
        remap = self._ids.remove_positions(positions)
        live = self._vector_docs >= 0
        self._vector_docs = np.where(live, remap[np.maximum(self._vector_docs, 0)], -1)
        self._doc_vectors = None

    # -- writes ------------------------------------------------------------------

    def add_documents(
        self,
        documents_ids: DocumentId | list[DocumentId],
        documents_embeddings: Any,
        batch_size: int = 2000,
    ) -> Voyager:
        """Add documents (an id already indexed is replaced) in one atomic write.

        Parameters
        ----------
        documents_ids
            One id or a list of ``n`` ids (str or int).
        documents_embeddings
            ``n`` matrices ``(L_i, H)`` (list, 3-D array/tensor), or a single
            ``(L, H)`` matrix for one document.
        batch_size
            Documents per ``add_items`` call.

        Returns
        -------
        Voyager
            ``self``.
        """
        batch_size = check_int("batch_size", batch_size)
        ids, matrices = check_documents(documents_ids, documents_embeddings)
        dim = embedding_dim(matrices)
        if dim != self.embedding_size:
            raise ValueError(
                f"documents_embeddings have dimension {dim} but the index was "
                f"created with embedding_size={self.embedding_size}."
            )
        try:
            replaced = self._ids.positions(ids)
            self._drop_positions(replaced)
            positions = self._ids.extend(ids)
            next_vector = len(self._vector_docs)
            new_owners = []
            starts = range(0, len(ids), batch_size)
            bar = tqdm.tqdm(
                starts,
                desc=f"Adding documents to the index (bs={batch_size})",
                disable=not self.show_progress,
            )
            for start in bar:
                batch = matrices[start : start + batch_size]
                vectors = np.concatenate([to_float32_numpy(m) for m in batch])
                vector_ids = np.arange(next_vector, next_vector + len(vectors))
                self._index.add_items(vectors, ids=vector_ids.tolist())
                next_vector += len(vectors)
                owners = np.repeat(
                    np.asarray(positions[start : start + batch_size], dtype=np.int64),
                    [len(m) for m in batch],
                )
                new_owners.append(owners)
            self._vector_docs = np.concatenate([self._vector_docs, *new_owners])
            self._doc_vectors = None
            self._save()
        except BaseException:
            self._reload()
            raise
        return self

    def remove_documents(self, documents_ids: DocumentId | list[DocumentId]) -> Voyager:
        """Remove documents in one atomic write.

        Raises
        ------
        KeyError
            If some ids are not indexed (listing a few); nothing is removed.
        """
        ids = self._check_known(documents_ids)
        try:
            self._drop_positions(self._ids.positions(ids))
            self._save()
        except BaseException:
            self._reload()
            raise
        return self

    # -- reads -------------------------------------------------------------------

    def _num_live_vectors(self) -> int:
        return int((self._vector_docs >= 0).sum())

    def __call__(self, queries_embeddings: Any, k: int = 10) -> dict[str, list]:
        """Nearest document tokens of every query token.

        Parameters
        ----------
        queries_embeddings
            ``n`` query matrices ``(Lq_i, H)``, or one ``(Lq, H)`` matrix.
        k
            Neighbours per query token (capped at the number of stored tokens).

        Returns
        -------
        dict
            ``documents_ids``: per query, per token, the ``k`` neighbour document
            ids (repeating when several tokens of a document are neighbours);
            ``distances``: per query, per token, a ``(k,)`` array of cosine
            distances (``1 - cos``, smaller is closer).
        """
        k = check_k(k)
        queries = as_matrices(queries_embeddings, "queries_embeddings")
        dim = embedding_dim(queries)
        if dim != self.embedding_size:
            raise ValueError(
                f"queries_embeddings have dimension {dim} but the index holds "
                f"vectors of dimension {self.embedding_size}."
            )
        live = self._num_live_vectors()
        if live == 0:
            raise ValueError("Index is empty, add documents before querying.")
        k = min(k, live)
        flat = np.concatenate([to_float32_numpy(q) for q in queries])
        neighbours, distances = self._query(flat, k)
        owners = self._vector_docs[neighbours.astype(np.int64)]
        ids = self._ids.ids
        documents_ids, all_distances = [], []
        start = 0
        for query in queries:
            end = start + len(query)
            documents_ids.append(
                [[ids[p] for p in row] for row in owners[start:end].tolist()]
            )
            all_distances.append(list(distances[start:end]))
            start = end
        return {"documents_ids": documents_ids, "distances": all_distances}

    def _query(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Voyager query that widens the search when deletions starve the graph."""
        ef = max(self.ef_search, k)
        total = len(self._vector_docs)
        while True:
            try:
                return self._index.query(vectors, k=k, query_ef=ef)
            except Exception as error:  # voyager.RecallError
                if "Fewer than expected" not in str(error):
                    raise
                if ef < total:
                    ef = min(total, ef * 4)
                elif k > 1:
                    k = max(1, k // 2)
                else:
                    raise

    def get_documents_embeddings(
        self, documents_ids: list[list[DocumentId]]
    ) -> list[list[np.ndarray]]:
        """Stored (normalised) token vectors of documents, grouped like the input.

        Parameters
        ----------
        documents_ids
            Groups of ids, e.g. one list of candidates per query.

        Returns
        -------
        list[list[np.ndarray]]
            Per group, per document, a float32 ``(L_d, H)`` matrix.

        Raises
        ------
        KeyError
            If an id is not in the index.
        """
        vector_ids, offsets = self._document_vectors()
        groups = [normalize_ids(group) for group in documents_ids]
        wanted = []
        lengths = []
        for group in groups:
            for document_id in group:
                try:
                    position = self._ids.position(document_id)
                except KeyError:
                    raise KeyError(
                        f"Document id {document_id!r} is not in the index."
                    ) from None
                chunk = vector_ids[offsets[position] : offsets[position + 1]]
                wanted.append(chunk)
                lengths.append(len(chunk))
        if not wanted:
            return [[] for _ in groups]
        vectors = np.asarray(
            self._index.get_vectors(np.concatenate(wanted).tolist()), dtype=np.float32
        )
        splits = np.split(vectors, np.cumsum(lengths)[:-1])
        out, cursor = [], 0
        for group in groups:
            out.append(splits[cursor : cursor + len(group)])
            cursor += len(group)
        return out
