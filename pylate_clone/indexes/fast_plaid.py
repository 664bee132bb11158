"""PLAID on the fast-plaid library (``indexes.FastPlaid``), format version 1.

This is the PLAID of the previous release, kept for folders it wrote and for
users who want fast-plaid's compressed index. Every write copies the live
generation (``storage.generations``); :class:`indexes.PLAID` is the segment engine
whose writes cost what they change.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ._docs import fill_doc
from .base import Base, EndToEndSearch
from .compat.plaid_params import plaid_settings
from .storage.commit import DEFAULT_LOCK_TIMEOUT, IndexFormatError
from .storage.faults import crash_point
from .storage.generations import GenerationIndexMixin, IndexStore
from .storage.idmap import DocumentId, normalize_id
from .storage.ragged import pack_folder, unpack_folder
from .utils import (
    check_documents,
    check_int,
    check_timeout,
    convert_embeddings_to_torch,
    embedding_dim,
    per_query_subsets,
)

logger = logging.getLogger(__name__)

PAYLOAD = "fast_plaid"


def _import_fast_plaid():
    try:
        from fast_plaid import search
    except ImportError as error:  # pragma: no cover - fast-plaid is a dependency
        raise ImportError(
            "indexes.FastPlaid needs the fast-plaid package: pip install fast-plaid"
        ) from error
    return search


@contextlib.contextmanager
def _frozen_gc():
    """Make fast-plaid's many ``gc.collect()`` calls cheap for the duration.

    fast-plaid calls ``gc.collect()`` a dozen times per write; each call walks
    every object of the process (0.3 s apiece once torch and transformers are
    loaded, most of a small write). ``gc.freeze()`` parks the objects that
    existed before the call in the permanent generation and ``gc.unfreeze()``
    returns them afterwards, so nothing is leaked. Nested uses (a write opens
    fast-plaid inside its own block) freeze and unfreeze once, at the
    outermost level: an inner ``unfreeze`` would thaw the whole heap for the
    rest of the outer block, where most of the collections happen.
    """
    outermost = _FREEZE_DEPTH[0] == 0
    if outermost:
        gc.freeze()
    _FREEZE_DEPTH[0] += 1
    try:
        yield
    finally:
        _FREEZE_DEPTH[0] -= 1
        if outermost:
            gc.unfreeze()


# How many _frozen_gc blocks are open (indexes are used from one thread at a
# time: the write lock serialises writers of a folder).
_FREEZE_DEPTH = [0]


def default_n_ivf_probe(num_partitions: int) -> int:
    """IVF cells probed per query token when ``n_ivf_probe`` is left to None.

    PyLate's 8 for codebooks up to 8,192 centroids, then one more cell per
    1,024 centroids (capped at 64): fast-plaid sizes its codebook as about
    ``16 * sqrt(n_tokens)``, so a fixed probe count covers a shrinking share of
    a growing collection. On SciFact (8,192 centroids) probing 8 to 64 cells
    gave the same recall; candidate re-scoring is what limits it.
    """
    return int(min(64, max(8, num_partitions // 1024)))


def default_n_full_scores(num_documents: int, k: int) -> int:
    """Candidates re-scored with decompressed MaxSim when ``n_full_scores`` is None.

    A quarter of the collection, between 2,048 and PyLate's 8,192 (and at least
    ``4 k``). On SciFact (5,183 documents, ``nbits=8``) 2,048 gives recall@10
    0.97 against exhaustive MaxSim at ~4x the speed of 8,192.
    """
    return int(max(4 * k, min(8192, max(2048, num_documents // 4))))


@fill_doc
class FastPlaid(EndToEndSearch, GenerationIndexMixin, Base):
    """PLAID index on fast-plaid: IVF candidate generation, compressed MaxSim.

    PyLate's ``indexes.fast_plaid.FastPlaid``. Opens the ``plaid`` folders of
    the previous release (format 1) and writes that format.

    The first :meth:`add_documents` creates the fast-plaid index (k-means on
    the documents given), later calls update it. fast-plaid numbers documents
    ``0..n-1`` and renumbers them after deletions; the user ids (str or int)
    are kept right through any sequence of adds, removals and reloads.

    Parameters
    ----------
    %(location)s
    nbits
        Bits per residual dimension (1, 2, 4 or 8); fixed at creation. The
        default is 8, not PyLate's 4: with 4 bits the compressed scores cap
        recall@10 against exhaustive MaxSim near 0.91 on SciFact whatever the
        search settings; 8 bits reach 0.97 for ~1.8x the disk (see
        benchmarks/index.py).
    kmeans_niters
        k-means iterations when centroids are computed.
    max_points_per_centroid
        k-means sampling cap per centroid.
    n_samples_kmeans
        Documents sampled for k-means; None lets fast-plaid decide.
    seed
        Seed of the k-means sampling and initialisation.
    use_triton
        Use Triton k-means kernels; None lets fast-plaid decide.
    n_ivf_probe
        IVF cells probed per query token; None scales it with the number of
        centroids (:func:`default_n_ivf_probe`).
    n_full_scores
        Candidates re-scored with decompressed MaxSim; None scales it with the
        collection (:func:`default_n_full_scores`).
    batch_size
        Documents per scoring chunk in fast-plaid's search; None (default)
        lets fast-plaid plan chunks from its memory budget.
    show_progress
        Show fast-plaid's search progress bar.
    device
        Device(s) for fast-plaid (``"cpu"``, ``"cuda:0"``, a list); None uses
        every CUDA device, else the CPU.
    num_threads
        CPU search workers (fast-plaid ``n_processes``); None lets it decide.
    low_memory
        Keep the large document tensors off the GPU.
    **kwargs
        Stanford-backend-only arguments are accepted and ignored with a
        ``FutureWarning``.
    """

    kind = "plaid"

    def __init__(
        self,
        index_folder: str | os.PathLike = "indexes",
        index_name: str = "fast_plaid",
        override: bool = False,
        nbits: int = 8,
        kmeans_niters: int = 4,
        max_points_per_centroid: int = 256,
        n_samples_kmeans: int | None = None,
        seed: int = 42,
        use_triton: bool | None = None,
        n_ivf_probe: int | None = None,
        n_full_scores: int | None = None,
        batch_size: int | None = None,
        num_threads: int | None = None,
        show_progress: bool = True,
        device: str | list[str] | None = None,
        low_memory: bool = False,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        # locals() holds the arguments; compat.plaid_params.PARAMETERS picks PLAID's.
        settings = plaid_settings(type(self).__name__, kwargs, locals())
        self.__dict__.update(settings)
        self.lock_timeout = check_timeout(lock_timeout)
        self._search_module = _import_fast_plaid()
        super().__init__(index_folder, index_name, override)
        self._store = IndexStore(self.index_path, self.kind)
        self._fast_plaid: Any = None
        self._num_partitions = 0
        self._dim: int | None = None
        self._open()

    # -- state -----------------------------------------------------------------

    @property
    def is_indexed(self) -> bool:
        """Whether the index holds documents."""
        return len(self._ids) > 0

    def _params(self) -> dict[str, Any]:
        return {"nbits": self.nbits, "embedding_size": self._dim}

    def _open_fast_plaid(self, folder: Path) -> Any:
        with _frozen_gc():
            return self._search_module.FastPlaid(
                index=str(folder),
                device=self.device,
                index_gpu_memory="low" if self.low_memory else "auto",
            )

    def _close_fast_plaid(self) -> None:
        if self._fast_plaid is not None:
            with contextlib.suppress(Exception), _frozen_gc():
                self._fast_plaid.close()
        self._fast_plaid = None

    def _create_empty(self) -> None:
        self._close_fast_plaid()
        self._dim = None
        self._num_partitions = 0
        with self._store.write() as staging:
            self._store.commit(staging, self._ids, self._params())

    def _load_generation(self, folder: Path, manifest: dict[str, Any]) -> None:
        self._close_fast_plaid()
        params = manifest["params"]
        payload = folder / PAYLOAD
        if len(self._ids) == 0:
            self._dim, self._num_partitions = None, 0
            return
        metadata_path = payload / "metadata.json"
        try:
            metadata = json.loads(metadata_path.read_text())
            num_documents = int(metadata["num_documents"])
            self._num_partitions = int(metadata.get("num_partitions", 0))
            self.nbits = int(metadata.get("nbits", params.get("nbits", self.nbits)))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise IndexFormatError(
                f"{metadata_path} is missing or unreadable ({error})."
            ) from None
        if num_documents != len(self._ids):
            raise IndexFormatError(
                f"{metadata_path} holds {num_documents} documents but "
                f"{folder / 'ids.json'} maps {len(self._ids)}."
            )
        self._dim = params.get("embedding_size")
        try:
            self._fast_plaid = self._open_fast_plaid(payload)
        except Exception as error:  # noqa: BLE001 - native errors vary
            raise IndexFormatError(
                f"{payload} could not be opened by fast-plaid ({error})."
            ) from None

    # -- writes ------------------------------------------------------------------

    def _write(
        self,
        drop_ids: list[DocumentId],
        new_ids: list[DocumentId],
        new_embeddings: list[torch.Tensor],
    ) -> None:
        """Build the next generation from a private copy of the live one and commit.

        fast-plaid edits its folder in place, so it only ever runs on a copy;
        the live generation is never modified. Positions are resolved under
        the write lock, after reloading if another process committed.
        """
        store = self._store
        self._close_fast_plaid()
        try:
            with (
                store.write(
                    on_stale=self._reload, timeout=self.lock_timeout
                ) as staging,
                _frozen_gc(),
            ):
                self._close_fast_plaid()
                current = store.current / PAYLOAD if store.exists() else None
                ids = self._ids.copy()
                drop_positions = ids.positions(drop_ids)
                work = staging / PAYLOAD
                remaining = len(ids) - len(set(drop_positions))
                if current is not None and current.is_dir() and remaining > 0:
                    shutil.copytree(
                        current, work, ignore=shutil.ignore_patterns("plaid.lock")
                    )
                    unpack_folder(work)
                crash_point("plaid_copy_made")
                has_index = (work / "metadata.json").exists()
                fast_plaid = None
                if has_index or new_embeddings:
                    fast_plaid = self._open_fast_plaid(work)
                if drop_positions:
                    if has_index:
                        fast_plaid.delete(subset=sorted(set(drop_positions)))
                    ids.remove_positions(drop_positions)
                    crash_point("plaid_deleted")
                if new_embeddings:
                    kmeans = {
                        "kmeans_niters": self.kmeans_niters,
                        "max_points_per_centroid": self.max_points_per_centroid,
                        "n_samples_kmeans": self.n_samples_kmeans,
                        "seed": self.seed,
                        "use_triton_kmeans": self.use_triton,
                    }
                    if has_index:
                        fast_plaid.update(documents_embeddings=new_embeddings, **kmeans)
                    else:
                        self._create(fast_plaid, new_embeddings, kmeans)
                    ids.extend(new_ids)
                    crash_point("plaid_native_written")
                if fast_plaid is not None:
                    fast_plaid.close()
                    del fast_plaid
                if work.exists():
                    (work / "plaid.lock").unlink(missing_ok=True)
                    pack_folder(work)
                    if len(ids) == 0:
                        shutil.rmtree(work)
                if len(ids) == 0:
                    self._dim = None
                store.commit(staging, ids, self._params())
        finally:
            # Reload whatever is live now: the new generation, or the old one if
            # the write failed.
            self._reload()

    def _create(self, fast_plaid: Any, embeddings: list, kmeans: dict) -> None:
        """First build of the fast-plaid index, with a clear error when too small."""
        try:
            fast_plaid.create(
                documents_embeddings=embeddings, nbits=self.nbits, **kmeans
            )
        except RuntimeError as error:
            if "heldout" not in str(error):
                raise
            n_tokens = sum(len(e) for e in embeddings)
            raise ValueError(
                f"fast-plaid cannot build a PLAID index from only {n_tokens} token "
                "vectors (it holds some out to train its codec); add more documents "
                f"in the first add_documents call ({error})."
            ) from None

    def add_documents(
        self,
        documents_ids: DocumentId | list[DocumentId],
        documents_embeddings: Any,
        batch_size: int = 2000,
    ) -> FastPlaid:
        """Add documents in one atomic write; an id already indexed is replaced.

        Parameters
        ----------
        documents_ids
            One id or a list of ``n`` ids (str or int).
        documents_embeddings
            ``n`` matrices ``(L_i, H)`` (list, 3-D array/tensor), or a single
            ``(L, H)`` matrix for one document.
        batch_size
            Accepted for PyLate compatibility (checked; fast-plaid writes the
            documents in one call).

        Returns
        -------
        FastPlaid
            ``self``.
        """
        check_int("batch_size", batch_size)
        ids, matrices = check_documents(documents_ids, documents_embeddings, self._dim)
        dim = embedding_dim(matrices)
        tensors = [t.to(torch.float32) for t in convert_embeddings_to_torch(matrices)]
        self._dim = dim
        try:
            self._write(ids, ids, tensors)
        except BaseException:
            if len(self._ids) == 0:
                self._dim = None
            raise
        return self

    def remove_documents(
        self, documents_ids: DocumentId | list[DocumentId]
    ) -> FastPlaid:
        """Remove documents in one atomic write; unknown ids are skipped (logged)."""
        ids = self._known_for_removal(documents_ids)
        if ids:
            self._write(ids, [], [])
        return self

    # -- search ------------------------------------------------------------------

    def _translate_subset(self, subset: Any, n_queries: int) -> list[list[int]] | None:
        """User-id subset (shared list or one list per query) to fast-plaid ids."""
        groups = per_query_subsets(subset, n_queries)
        if groups is None:
            return None
        cache: dict[int, list[int]] = {}
        out = []
        for group in groups:
            key = id(group)
            if key not in cache:
                cache[key] = sorted(
                    set(self._ids.positions(normalize_id(i) for i in group))
                )
            out.append(cache[key])
        return out

    def _search(
        self, queries: list, k: int, subset: Any, filter: Any = None
    ) -> list[list[dict]]:
        subsets = self._translate_subset(subset, len(queries))
        tensors = [t.to(torch.float32) for t in convert_embeddings_to_torch(queries)]
        results: list[list[dict[str, Any]]] = [[] for _ in queries]
        active = [i for i in range(len(queries)) if subsets is None or subsets[i]]
        if not active:
            return results
        search_kwargs: dict[str, Any] = {
            "top_k": k,
            "n_ivf_probe": self.n_ivf_probe
            or default_n_ivf_probe(self._num_partitions),
            "n_full_scores": self.n_full_scores or default_n_full_scores(len(self), k),
            "show_progress": self.show_progress,
            "subset": None if subsets is None else [subsets[i] for i in active],
            "n_processes": self.num_threads,
        }
        if self.batch_size is not None:
            search_kwargs["batch_size"] = self.batch_size
        with _frozen_gc():
            hits = self._fast_plaid.search(
                [tensors[i] for i in active], **search_kwargs
            )
        ids = self._ids.ids
        for i, query_hits in zip(active, hits):
            seen = set()
            for position, score in query_hits:
                if 0 <= position < len(ids) and position not in seen:
                    seen.add(position)
                    score = float(score)
                    if not math.isnan(score):
                        results[i].append({"id": ids[position], "score": score})
        return results

    def get_documents_embeddings(self, document_ids: list[list[DocumentId]]) -> Any:
        """Not available: PLAID stores compressed embeddings."""
        raise NotImplementedError(
            "PLAID stores compressed embeddings; use indexes.Voyager to fetch them."
        )
