"""WARP end-to-end index (optional extra ``warp``: ``xtr-warp-rs``), PyLate's constructor."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..rank import RerankResult
from .base import Base
from .storage.commit import IndexFormatError, atomic_write_bytes
from .storage.idmap import DocumentId, DocumentIdMap, normalize_ids
from .utils import (
    as_matrices,
    check_documents,
    check_int,
    check_k,
    convert_embeddings_to_torch,
    per_query_subsets,
)

logger = logging.getLogger(__name__)

IDS_FILE = "documents_ids.json"
WARP_DIR = "warp_index"


def _import_warp_search():
    try:
        from xtr_warp import search
    except ImportError as error:
        raise ImportError(
            "indexes.WARP needs the optional 'xtr-warp-rs' package: "
            f"pip install 'pylate-clone[warp]'. ({error})"
        ) from None
    return search


class WARP(Base):
    """End-to-end multi-vector index on WARP (``xtr-warp-rs``, Rust engine).

    WARP compresses token vectors with centroids and residual codes and scores
    documents with XTR-style imputation; ``__call__`` returns the final ranked
    documents, so :class:`pylate_clone.retrieve.ColBERT` and ``XTR`` pass
    queries straight through.

    The folder ``{index_folder}/{index_name}`` holds ``warp_index/``, written by
    xtr-warp-rs itself (npy and JSON files, no pickle; its writes are not
    atomic, see ``docs/backends.md``), and ``documents_ids.json``, the mapping
    of WARP passage ids to your ids, replaced atomically after each change.

    Parameters
    ----------
    index_folder, index_name, override
        Location, and whether to start empty.
    nbits, kmeans_niters, max_points_per_centroid, n_samples_kmeans, seed, use_triton
        Codec training (first ``add_documents``).
    min_outliers, max_growth_rate
        When later additions may grow the centroid codebook.
    n_ivf_probe, bound, t_prime, max_candidates, centroid_score_threshold
        Search settings passed to WARP.
    batch_size, num_threads, show_progress, device, dtype, mmap
        Execution settings; ``device`` defaults to CUDA when available.
    """

    is_end_to_end_index = True
    kind = "warp"

    def __init__(
        self,
        index_folder: str = "indexes",
        index_name: str = "warp",
        override: bool = False,
        nbits: int = 4,
        kmeans_niters: int = 4,
        max_points_per_centroid: int = 256,
        n_samples_kmeans: int | None = None,
        seed: int = 42,
        use_triton: bool | None = None,
        min_outliers: int = 50,
        max_growth_rate: float = 0.1,
        n_ivf_probe: int | None = 32,
        bound: int | None = None,
        t_prime: int | None = 100_000,
        max_candidates: int | None = None,
        centroid_score_threshold: float | None = None,
        batch_size: int = 8192,
        num_threads: int | None = 1,
        show_progress: bool = True,
        device: str | None = None,
        dtype: torch.dtype = torch.float32,
        mmap: bool = True,
    ) -> None:
        search = _import_warp_search()
        super().__init__(index_folder, index_name, override)
        self.nbits, self.kmeans_niters = nbits, kmeans_niters
        self.max_points_per_centroid = max_points_per_centroid
        self.n_samples_kmeans, self.seed, self.use_triton = (
            n_samples_kmeans,
            seed,
            use_triton,
        )
        self.min_outliers, self.max_growth_rate = min_outliers, max_growth_rate
        self.n_ivf_probe, self.bound, self.t_prime = n_ivf_probe, bound, t_prime
        self.max_candidates = max_candidates
        self.centroid_score_threshold = centroid_score_threshold
        self.batch_size, self.num_threads = batch_size, num_threads
        self.show_progress, self.dtype, self.mmap = show_progress, dtype, mmap
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if override and os.path.exists(self.index_path):
            shutil.rmtree(self.index_path)
        os.makedirs(self.index_path, exist_ok=True)
        self._ids_path = Path(self.index_path) / IDS_FILE
        self.warp = search.XTRWarp(
            index=os.path.join(self.index_path, WARP_DIR), device=self.device
        )
        # Document ids live in the shared DocumentIdMap (dense positions);
        # ``_warp_ids[position]`` is WARP's own passage id for that document.
        self._warp_ids: list[int] = []
        # WARP passage id -> position, built on the first search after a change
        # (every change goes through _write_ids), not on every call.
        self._position_of: dict[int, int] | None = None
        self._loaded = False
        self.is_indexed = self._ids_path.exists()
        if self.is_indexed:
            self._read_ids()
            self._ensure_loaded()

    # -- id mapping ------------------------------------------------------------------

    def _read_ids(self) -> None:
        try:
            data = json.loads(self._ids_path.read_text(encoding="utf-8"))
            warp_ids = [int(w) for w in data["warp_ids"]]
            ids = DocumentIdMap(data["documents_ids"])
            if len(ids) != len(warp_ids) or len(set(warp_ids)) != len(warp_ids):
                raise ValueError("warp_ids and documents_ids do not pair up")
        except (ValueError, KeyError, TypeError) as error:
            raise IndexFormatError(
                f"{self._ids_path} is not a valid WARP id mapping ({error})."
            ) from None
        self._ids, self._warp_ids = ids, warp_ids
        self._position_of = None

    def _write_ids(self) -> None:
        self._position_of = None
        data = {"warp_ids": self._warp_ids, "documents_ids": self._ids.ids}
        atomic_write_bytes(self._ids_path, json.dumps(data).encode("utf-8"))

    def _warp_of(self, documents_ids: list[DocumentId]) -> list[int]:
        """WARP passage ids of the known ids among ``documents_ids`` (order kept)."""
        return [self._warp_ids[p] for p in self._ids.positions(documents_ids)]

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.warp.load(device=self.device, dtype=self.dtype, mmap=self.mmap)
            self._loaded = True

    # -- mutation ----------------------------------------------------------------------

    def add_documents(
        self, documents_ids: Any, documents_embeddings: Any, batch_size: int = 2000
    ) -> WARP:
        """Add documents; ids already indexed are updated in place.

        ``batch_size`` is accepted for PyLate code (checked; WARP batches
        internally).
        """
        check_int("batch_size", batch_size)
        ids, matrices = check_documents(documents_ids, documents_embeddings)
        known = [i for i, d in enumerate(ids) if d in self._ids]
        if known:
            self.update_documents([ids[i] for i in known], [matrices[i] for i in known])
            fresh = [i for i in range(len(ids)) if i not in set(known)]
            ids, matrices = [ids[i] for i in fresh], [matrices[i] for i in fresh]
            if not ids:
                return self
        tensors = convert_embeddings_to_torch(matrices)
        if not self.is_indexed:
            self.warp.create(
                embeddings_source=tensors,
                device=self.device,
                kmeans_niters=self.kmeans_niters,
                max_points_per_centroid=self.max_points_per_centroid,
                nbits=self.nbits,
                n_samples_kmeans=self.n_samples_kmeans,
                seed=self.seed,
                use_triton_kmeans=self.use_triton,
                show_progress=self.show_progress,
            )
            warp_ids = list(range(len(tensors)))
            self.is_indexed = True
        else:
            warp_ids = self.warp.add(
                embeddings_source=tensors,
                reload=True,
                min_outliers=self.min_outliers,
                max_growth_rate=self.max_growth_rate,
                max_points_per_centroid=self.max_points_per_centroid,
                show_progress=self.show_progress,
            )
        self._ensure_loaded()
        self._ids.extend(ids)
        self._warp_ids.extend(int(w) for w in warp_ids)
        self._write_ids()
        return self

    def remove_documents(self, documents_ids: Any) -> WARP:
        """Remove documents; unknown ids are skipped with a warning naming them."""
        ids = self._known_for_removal(documents_ids)
        if not ids:
            return self
        positions = self._ids.positions(ids)
        removed = [self._warp_ids[p] for p in positions]
        keep = self._ids.remove_positions(positions) >= 0
        self._warp_ids = [w for w, k in zip(self._warp_ids, keep.tolist()) if k]
        self._write_ids()
        self.warp.delete(removed)
        self.warp.compact(reload=True, show_progress=self.show_progress)
        return self

    def update_documents(self, documents_ids: Any, documents_embeddings: Any) -> WARP:
        """Replace the vectors of indexed documents; unknown ids are added."""
        ids, matrices = check_documents(documents_ids, documents_embeddings)
        known = [i for i, d in enumerate(ids) if d in self._ids]
        if known:
            self.warp.update(
                passage_ids=self._warp_of([ids[i] for i in known]),
                embeddings_source=convert_embeddings_to_torch(
                    [matrices[i] for i in known]
                ),
                reload=True,
                show_progress=self.show_progress,
            )
        fresh = [i for i in range(len(ids)) if i not in set(known)]
        if fresh:
            self.add_documents([ids[i] for i in fresh], [matrices[i] for i in fresh])
        return self

    # -- search ------------------------------------------------------------------------

    def __call__(
        self, queries_embeddings: Any, k: int = 10, subset: Any = None
    ) -> list[list[RerankResult]]:
        """Ranked documents of every query (``subset``: allowed ids, shared or per query)."""
        k = check_k(k)
        if not self.is_indexed:
            raise ValueError("The index is empty. Add documents before querying.")
        self._ensure_loaded()
        queries = convert_embeddings_to_torch(
            as_matrices(queries_embeddings, "queries_embeddings")
        )
        warp_subset = None
        groups = per_query_subsets(subset, len(queries))
        if groups is not None:
            # One shared list is passed flat, as WARP takes it; per-query lists
            # as one list per query. Unknown ids are dropped, as PyLate does.
            shared = all(g is groups[0] for g in groups)
            chosen = groups[:1] if shared else groups
            mapped = [self._warp_of(normalize_ids(g)) for g in chosen]
            warp_subset = mapped[0] if shared else mapped
        hits = self.warp.search(
            queries_embeddings=queries,
            top_k=k,
            nprobe=self.n_ivf_probe,
            bound=self.bound,
            t_prime=self.t_prime,
            max_candidates=self.max_candidates,
            centroid_score_threshold=self.centroid_score_threshold,
            batch_size=self.batch_size,
            num_threads=self.num_threads,
            subset=warp_subset,
            show_progress=self.show_progress,
        )
        if self._position_of is None:
            self._position_of = {w: p for p, w in enumerate(self._warp_ids)}
        position_of = self._position_of
        results = []
        for query_hits in hits:
            ranked, seen = [], set()
            for warp_id, score in query_hits:
                position = position_of.get(int(warp_id))
                document_id = None if position is None else self._ids.id_at(position)
                if document_id is not None and document_id not in seen:
                    seen.add(document_id)
                    ranked.append(RerankResult(id=document_id, score=float(score)))
            results.append(ranked)
        return results

    def get_documents_embeddings(self, document_ids: list[list[DocumentId]]) -> Any:
        """Not available: WARP keeps only compressed codes (PyLate raises the same)."""
        raise NotImplementedError(
            "WARP does not give back document embeddings: it stores them as "
            "compressed centroid codes and residuals."
        )
