"""ScaNN token-level index (optional extra ``scann``), PyLate's constructor."""

from __future__ import annotations

import logging
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import tqdm

from .base import Base
from .storage.commit import IndexFormatError
from .storage.faults import crash_point
from .storage.generations import GenerationIndexMixin, IndexStore
from .storage.idmap import DocumentId, DocumentIdMap, describe_ids, normalize_ids
from .utils import (
    as_matrices,
    check_documents,
    check_int,
    check_k,
    embedding_dim,
    np_dtype_for,
    to_float32_numpy,
)

logger = logging.getLogger(__name__)

TOKENS_FILE = "token_owners.npy"
EMBEDDINGS_FILE = "embeddings.npy"
SEARCHER_DIR = "searcher"
# ScaNN's serializer writes its document ids as a pickle when the searcher has
# any; ours never does, and a folder holding one is refused before loading.
_SCANN_PICKLE = "scann_docids.pkl"
VERBOSE_LEVELS = ("none", "init", "all")


def _import_scann():
    try:
        import scann
    except ImportError as error:
        raise ImportError(
            "indexes.ScaNN needs the optional 'scann' package: "
            "pip install 'pylate-clone[scann]' (wheels for Linux x86_64, "
            f"CPython 3.9-3.12). ({error})"
        ) from None
    return scann


class UnknownDocumentError(KeyError, ValueError):
    """An id that is not indexed: a ``KeyError`` here, a ``ValueError`` in PyLate."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _storage_dtype(matrices: list) -> type:
    """float16 or float32, shared by every matrix (PyLate keeps the input's)."""
    kinds = {np_dtype_for(m.dtype) or np.float32 for m in matrices}
    if len(kinds) > 1:
        raise ValueError(
            "documents_embeddings must all have the same dtype (float16 or float32), "
            f"got {sorted(k.__name__ for k in kinds)}."
        )
    return kinds.pop()


def _to_numpy(matrix: Any, dtype: type) -> np.ndarray:
    if hasattr(matrix, "detach"):
        matrix = matrix.detach().cpu().numpy()
    return np.ascontiguousarray(matrix, dtype=dtype)


class ScaNN(GenerationIndexMixin, Base):
    """Token-level index on Google's ScaNN (anisotropic quantisation, dot product).

    Like :class:`Voyager`, ``__call__`` returns, per query token, the ``k``
    nearest document tokens' owners and their scores (here dot products, higher
    is closer), for :class:`pylate_clone.retrieve.ColBERT` (rerank, needs
    ``store_embeddings=True``) or :class:`pylate_clone.retrieve.XTR`.

    ScaNN builds its tree once: documents are added in a single
    ``add_documents`` call (a second call raises, as in PyLate). Files are
    committed as one atomic generation (``manifest.json``, JSON id map, ScaNN's
    own protobuf/npy assets with relative paths); no pickle is written or read.

    Parameters
    ----------
    index_name
        Sub-folder of ``index_folder``.
    embedding_size
        Dimension of the token vectors.
    num_neighbors
        Default neighbours per query token of the ScaNN searcher.
    num_leaves, num_leaves_to_search, training_sample_size
        Tree partitioning; ``None`` picks ``min(2000, n_vectors)``, ``200`` and
        ``min(250000, n_vectors)``.
    dimensions_per_block, anisotropic_quantization_threshold
        Asymmetric hashing settings.
    verbose, verbose_level
        ``False``/``"none"`` silences progress; ``True``/``"init"``/``"all"``
        shows it. ``verbose_level`` overrides ``verbose``.
    use_autopilot
        Let ScaNN choose the tree and hashing settings.
    store_embeddings
        Keep the token vectors (needed by :meth:`get_documents_embeddings`).
    index_folder
        Root folder; ``None`` keeps the index in a private temporary folder
        deleted with the object (PyLate keeps it in memory).
    override
        Start empty even if an index exists.
    """

    is_end_to_end_index = False
    kind = "scann"

    def __init__(
        self,
        index_name: str | None = "ScaNN_index",
        embedding_size: int = 128,
        num_neighbors: int | None = 10,
        num_leaves: int | None = None,
        num_leaves_to_search: int | None = None,
        dimensions_per_block: int | None = 2,
        anisotropic_quantization_threshold: float | None = 0.2,
        training_sample_size: int | None = None,
        verbose: bool | str = "none",
        use_autopilot: bool = False,
        store_embeddings: bool = True,
        index_folder: str | None = None,
        override: bool = False,
        verbose_level: str | None = None,
    ) -> None:
        self._scann = _import_scann()
        if verbose_level is None:
            verbose_level = (
                ("init" if verbose else "none")
                if isinstance(verbose, bool)
                else verbose
            )
        if verbose_level not in VERBOSE_LEVELS:
            raise ValueError(
                f"Invalid verbosity level {verbose_level!r} (verbose/verbose_level): "
                f"expected a bool or one of {VERBOSE_LEVELS}."
            )
        self.verbose_level = verbose_level
        self.verbose = verbose_level in ("init", "all")
        self.show_progress = self.verbose
        self.embedding_size = check_int("embedding_size", embedding_size)
        self.num_neighbors = check_int("num_neighbors", num_neighbors, allow_none=True)
        self.num_leaves = check_int("num_leaves", num_leaves, allow_none=True)
        self.num_leaves_to_search = check_int(
            "num_leaves_to_search", num_leaves_to_search, allow_none=True
        )
        self.training_sample_size = check_int(
            "training_sample_size", training_sample_size, allow_none=True
        )
        self.dimensions_per_block = check_int(
            "dimensions_per_block", dimensions_per_block, allow_none=True
        )
        self.anisotropic_quantization_threshold = anisotropic_quantization_threshold
        self.use_autopilot = bool(use_autopilot)
        self.store_embeddings = bool(store_embeddings)
        if index_folder is None:
            scratch = tempfile.TemporaryDirectory(prefix="pylate_clone_scann_")
            self._scratch = scratch
            weakref.finalize(self, scratch.cleanup)
            index_folder = scratch.name
        super().__init__(index_folder, index_name or "ScaNN_index", override)
        self._store = IndexStore(self.index_path, self.kind)
        self.searcher: Any = None
        self._owners = np.empty(0, dtype=np.int64)
        self._embeddings: np.ndarray | None = None
        self._open()

    # -- storage -----------------------------------------------------------------

    def _params(self) -> dict[str, Any]:
        return {
            "embedding_size": self.embedding_size,
            "num_neighbors": self.num_neighbors,
            "num_leaves": self.num_leaves,
            "num_leaves_to_search": self.num_leaves_to_search,
            "training_sample_size": self.training_sample_size,
            "dimensions_per_block": self.dimensions_per_block,
            "anisotropic_quantization_threshold": (
                self.anisotropic_quantization_threshold
            ),
            "use_autopilot": self.use_autopilot,
            "store_embeddings": self.store_embeddings,
        }

    def _create_empty(self) -> None:
        self.searcher = None
        self._owners = np.empty(0, dtype=np.int64)
        self._embeddings = None
        with self._store.write() as staging:
            self._store.commit(staging, self._ids, self._params())

    def _load_generation(self, folder: Path, manifest: dict[str, Any]) -> None:
        params = manifest["params"]
        for name in ("embedding_size", "store_embeddings", "num_neighbors"):
            if name in params:
                setattr(self, name, params[name])
        if len(self._ids) == 0:
            self.searcher, self._embeddings = None, None
            self._owners = np.empty(0, dtype=np.int64)
            return
        searcher_dir = folder / SEARCHER_DIR
        if (searcher_dir / _SCANN_PICKLE).exists():
            raise IndexFormatError(
                f"{searcher_dir / _SCANN_PICKLE} is a pickle; pylate_clone does "
                "not load pickles. Rebuild the index."
            )
        try:
            self._owners = np.load(folder / TOKENS_FILE, allow_pickle=False)
            self.searcher = self._scann.scann_ops_pybind.load_searcher(
                str(searcher_dir), assets_backcompat_shim=False
            )
            self._embeddings = (
                np.load(folder / EMBEDDINGS_FILE, mmap_mode="r", allow_pickle=False)
                if self.store_embeddings
                else None
            )
        except (OSError, ValueError, RuntimeError) as error:
            raise IndexFormatError(
                f"{folder} could not be read as a ScaNN index ({error})."
            ) from None

    # -- building ------------------------------------------------------------------

    def _build(self, vectors: np.ndarray) -> Any:
        n = len(vectors)
        builder = self._scann.scann_ops_pybind.builder(
            vectors, self.num_neighbors or min(10, n), "dot_product"
        )
        if self.use_autopilot:
            return builder.autopilot().build()
        return (
            builder.tree(
                num_leaves=self.num_leaves or min(2_000, n),
                num_leaves_to_search=self.num_leaves_to_search or 200,
                training_sample_size=self.training_sample_size or min(250_000, n),
                spherical=True,
            )
            .score_ah(
                dimensions_per_block=self.dimensions_per_block or 2,
                anisotropic_quantization_threshold=(
                    self.anisotropic_quantization_threshold
                ),
            )
            .build()
        )

    def add_documents(
        self,
        documents_ids: DocumentId | list[DocumentId],
        documents_embeddings: Any,
        batch_size: int = 128,
    ) -> ScaNN:
        """Index every document at once (ScaNN cannot grow a built tree).

        Parameters
        ----------
        documents_ids
            ``n`` ids (str or int).
        documents_embeddings
            ``n`` matrices ``(L_i, embedding_size)``.
        batch_size
            Documents converted per progress step.

        Raises
        ------
        ValueError
            If documents were already added, or on malformed input.
        """
        batch_size = check_int("batch_size", batch_size)
        if len(self._ids):
            raise ValueError(
                "ScaNN index only supports adding all documents at once: this index "
                f"already holds {len(self._ids)} documents (use override=True)."
            )
        ids, matrices = check_documents(documents_ids, documents_embeddings)
        # Like PyLate, the dimension is the data's (embedding_size is a hint).
        self.embedding_size = embedding_dim(matrices)
        dtype = _storage_dtype(matrices)
        chunks = []
        for start in tqdm.tqdm(
            range(0, len(matrices), batch_size),
            desc="Flattening documents",
            disable=not self.show_progress,
        ):
            chunks.extend(
                _to_numpy(m, dtype) for m in matrices[start : start + batch_size]
            )
        vectors = np.concatenate(chunks)
        owners = np.repeat(
            np.arange(len(ids), dtype=np.int64), [len(c) for c in chunks]
        )
        searcher = self._build(vectors.astype(np.float32, copy=False))
        new_ids = DocumentIdMap(ids)
        with self._store.write() as staging:
            (staging / SEARCHER_DIR).mkdir()
            searcher.serialize(str(staging / SEARCHER_DIR), relative_path=True)
            np.save(staging / TOKENS_FILE, owners, allow_pickle=False)
            if self.store_embeddings:
                np.save(staging / EMBEDDINGS_FILE, vectors, allow_pickle=False)
            crash_point("scann_payload_written")
            self._store.commit(staging, new_ids, self._params())
        self._ids, self.searcher, self._owners = new_ids, searcher, owners
        self._embeddings = vectors if self.store_embeddings else None
        return self

    @property
    def flattened_embeddings(self) -> np.ndarray | None:
        """All stored token vectors ``(n_tokens, dim)`` in document order (PyLate's name)."""
        return self._embeddings

    @property
    def doc_id_to_embedding_range(self) -> dict[DocumentId, tuple[int, int]]:
        """``{document id: (first token row, token count)}`` (PyLate's name)."""
        counts = np.bincount(self._owners, minlength=len(self._ids))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        return {d: (int(s), int(c)) for d, s, c in zip(self._ids.ids, starts, counts)}

    @property
    def _documents_added(self) -> bool:
        return len(self._ids) > 0

    def save(self) -> None:
        """No-op kept for PyLate code: every ``add_documents`` is already committed."""

    def remove_documents(self, documents_ids: Any) -> ScaNN:
        """Not supported by ScaNN (PyLate raises the same).

        Raises
        ------
        NotImplementedError
            Always: rebuild the index without these documents.
        """
        raise NotImplementedError(
            "Document removal is not supported for ScaNN index: rebuild it with "
            "override=True."
        )

    def update_documents(self, documents_ids: Any, documents_embeddings: Any) -> ScaNN:
        """Not supported by ScaNN (its tree cannot change after building)."""
        raise NotImplementedError(
            "Updating documents is not supported for ScaNN index: rebuild it with "
            "override=True."
        )

    # -- search --------------------------------------------------------------------

    def __call__(self, queries_embeddings: Any, k: int = 10) -> dict[str, list]:
        """Nearest document tokens of every query token.

        Returns
        -------
        dict
            ``documents_ids``: per query, per token, the owners of its ``k``
            nearest document tokens; ``distances``: their dot products (higher is
            closer), aligned.
        """
        k = check_k(k)
        if self.searcher is None:
            raise ValueError("Index is empty, add documents before querying.")
        queries = as_matrices(queries_embeddings, "queries_embeddings")
        dim = embedding_dim(queries)
        if dim != self.embedding_size:
            raise ValueError(
                f"queries_embeddings have dimension {dim}, the index has "
                f"{self.embedding_size}."
            )
        flat = np.concatenate([to_float32_numpy(q) for q in queries])
        neighbours, scores = self.searcher.search_batched_parallel(
            flat, final_num_neighbors=min(k, len(self._owners))
        )
        scores = np.nan_to_num(scores, nan=0.0)
        ids = np.asarray(self._ids.ids, dtype=object)[self._owners[neighbours]]
        bounds = np.cumsum([len(q) for q in queries])[:-1]
        return {
            "documents_ids": [list(c) for c in np.split(ids, bounds)],
            "distances": [list(c) for c in np.split(scores, bounds)],
        }

    def get_documents_embeddings(
        self, documents_ids: list[list[DocumentId]]
    ) -> list[list[np.ndarray]]:
        """Stored token vectors, grouped like ``documents_ids``.

        Raises
        ------
        NotImplementedError
            If the index was built with ``store_embeddings=False``.
        KeyError
            Naming ids that are not indexed.
        """
        if not self.store_embeddings:
            raise NotImplementedError(
                "get_documents_embeddings needs store_embeddings=True when the "
                "ScaNN index is built."
            )
        if self._embeddings is None:
            return [[] for _ in documents_ids]
        starts = np.zeros(len(self._ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(self._owners, minlength=len(self._ids)), out=starts[1:])
        out = []
        for group in documents_ids:
            ids = normalize_ids(group)
            unknown = self._ids.unknown(ids)
            if unknown:
                raise UnknownDocumentError(
                    f"Document ID {unknown[0]!r} not found in index "
                    f"({len(unknown)} unknown: {describe_ids(unknown)})."
                )
            positions = [self._ids.position(d) for d in ids]
            out.append(
                [
                    np.asarray(self._embeddings[starts[p] : starts[p + 1]])
                    for p in positions
                ]
            )
        return out
