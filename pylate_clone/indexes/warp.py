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
from ._idmap import DocumentId, describe_ids, normalize_id, normalize_ids
from ._storage import IndexFormatError, atomic_write_bytes
from .utils import (
    as_matrices,
    check_documents,
    check_int,
    check_k,
    convert_embeddings_to_torch,
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


class WARP:
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
        self.index_folder, self.index_name = str(index_folder), index_name
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
        self.index_path = os.path.join(self.index_folder, index_name)
        if override and os.path.exists(self.index_path):
            shutil.rmtree(self.index_path)
        os.makedirs(self.index_path, exist_ok=True)
        self._ids_path = Path(self.index_path) / IDS_FILE
        self.warp = search.XTRWarp(
            index=os.path.join(self.index_path, WARP_DIR), device=self.device
        )
        self._warp_to_doc: dict[int, DocumentId] = {}
        self._doc_to_warp: dict[DocumentId, int] = {}
        self._loaded = False
        self.is_indexed = self._ids_path.exists()
        if self.is_indexed:
            self._read_ids()
            self._ensure_loaded()

    # -- id mapping ------------------------------------------------------------------

    def _read_ids(self) -> None:
        try:
            data = json.loads(self._ids_path.read_text(encoding="utf-8"))
            pairs = zip(data["warp_ids"], data["documents_ids"], strict=True)
            self._warp_to_doc = {int(w): normalize_id(d) for w, d in pairs}
        except (ValueError, KeyError, TypeError) as error:
            raise IndexFormatError(
                f"{self._ids_path} is not a valid WARP id mapping ({error})."
            ) from None
        self._doc_to_warp = {d: w for w, d in self._warp_to_doc.items()}

    def _write_ids(self) -> None:
        data = {
            "warp_ids": list(self._warp_to_doc),
            "documents_ids": list(self._warp_to_doc.values()),
        }
        atomic_write_bytes(self._ids_path, json.dumps(data).encode("utf-8"))

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.warp.load(device=self.device, dtype=self.dtype, mmap=self.mmap)
            self._loaded = True

    def __len__(self) -> int:
        """Number of documents in the index."""
        return len(self._doc_to_warp)

    def __contains__(self, document_id: object) -> bool:
        """Whether ``document_id`` is indexed."""
        return document_id in self._doc_to_warp

    @property
    def documents_ids(self) -> list[DocumentId]:
        """Indexed ids."""
        return list(self._doc_to_warp)

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
        known = [i for i, d in enumerate(ids) if d in self._doc_to_warp]
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
        for warp_id, document_id in zip(warp_ids, ids):
            self._warp_to_doc[int(warp_id)] = document_id
            self._doc_to_warp[document_id] = int(warp_id)
        self._write_ids()
        return self

    def remove_documents(self, documents_ids: Any) -> WARP:
        """Remove documents; unknown ids are skipped with a warning naming them."""
        ids = normalize_ids(documents_ids)
        unknown = [d for d in ids if d not in self._doc_to_warp]
        if unknown:
            logger.warning(
                "remove_documents: %d id(s) not in the index were skipped: %s",
                len(unknown),
                describe_ids(unknown),
            )
        warp_ids = [
            self._doc_to_warp.pop(d) for d in dict.fromkeys(ids) if d not in unknown
        ]
        for warp_id in warp_ids:
            del self._warp_to_doc[warp_id]
        if warp_ids:
            self._write_ids()
            self.warp.delete(warp_ids)
            self.warp.compact(reload=True, show_progress=self.show_progress)
        return self

    def update_documents(self, documents_ids: Any, documents_embeddings: Any) -> WARP:
        """Replace the vectors of indexed documents; unknown ids are added."""
        ids, matrices = check_documents(documents_ids, documents_embeddings)
        known = [i for i, d in enumerate(ids) if d in self._doc_to_warp]
        if known:
            self.warp.update(
                passage_ids=[self._doc_to_warp[ids[i]] for i in known],
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
        if subset is not None:
            subset = list(subset)
            per_query = bool(subset) and isinstance(subset[0], (list, tuple))
            groups = subset if per_query else [subset]
            mapped = [
                [
                    self._doc_to_warp[d]
                    for d in normalize_ids(g)
                    if d in self._doc_to_warp
                ]
                for g in groups
            ]
            warp_subset = mapped if per_query else mapped[0]
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
        results = []
        for query_hits in hits:
            ranked, seen = [], set()
            for warp_id, score in query_hits:
                document_id = self._warp_to_doc.get(int(warp_id))
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
