"""PLAID index on the segment engine: centroid IVF candidates, exact re-scoring."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import _ivf, _npy_stream, _search
from ._end_to_end import EndToEndIndex
from ._plaid_params import plaid_settings
from ._segments import TOKENS, OpenSegment, Transaction
from ._storage import DEFAULT_LOCK_TIMEOUT, IndexFormatError
from .tuning import Tunable

logger = logging.getLogger(__name__)

SAMPLE_CAP = 1 << 18  # token vectors at most in the k-means sample
_CHUNK = 1 << 16  # token rows read at a time when scanning a segment

CODES, INDPTR, DOCS = "codes.npy", "ivf_indptr.npy", "ivf_docs.npy"


class PLAID(Tunable, EndToEndIndex):
    """PLAID-style end-to-end index: IVF candidates, exact MaxSim re-scoring.

    Token vectors are stored once, in float16, in immutable segments. The
    first build trains a codebook (spherical k-means on a bounded sample);
    every token gets the code of its nearest centroid and each segment keeps
    inverted lists centroid -> documents. A query probes its tokens'
    ``n_ivf_probe`` best centroids, keeps the ``n_full_scores`` best
    candidates by approximate score and re-scores them with exact MaxSim on
    the stored vectors. When the collection (or the ``subset``) is small
    enough that an exact scan is cheaper, the exact scan is used instead.

    Later writes assign new tokens to the existing codebook (cost
    proportional to the change); :meth:`compact` retrains it on the live
    collection.

    Parameters follow PyLate 1.6.0's ``PLAID`` (same names and order).
    ``nbits``, ``use_triton``, ``batch_size``, ``num_threads``, ``device``
    and ``low_memory`` configured fast-plaid's compression and devices; they
    are validated and recorded but the engine keeps float16 vectors and runs
    on the CPU with numpy (``indexes.FastPlaid`` keeps the fast-plaid
    backend). ``n_ivf_probe`` / ``n_full_scores`` left to None use the
    engine's measured defaults (``_search.default_*``); :meth:`tune` picks
    them for a sample of queries.

    Parameters
    ----------
    index_folder, index_name, override
        Folder ``{index_folder}/{index_name}``; ``override`` empties it.
    use_fast
        Must be True (the Stanford backend is a separate class).
    nbits
        PyLate's residual bits (1, 2, 4 or 8); validated, not used.
    kmeans_niters
        k-means iterations of the codebook training.
    max_points_per_centroid
        Sample size cap per centroid for k-means (the sample is also capped
        at :data:`SAMPLE_CAP` token vectors so memory stays bounded).
    n_samples_kmeans
        Token vectors sampled for k-means; None uses the caps above.
    seed
        Seed of the sampling and of k-means.
    use_triton, batch_size, num_threads, device, low_memory
        Accepted for PyLate compatibility (validated, not used).
    n_ivf_probe
        Centroids probed per query token; None: engine default.
    n_full_scores
        Candidates re-scored exactly; None: engine default.
    show_progress
        Progress bar while adding documents.
    lock_timeout
        Seconds a writer waits for another process's write.
    """

    kind = "plaid"

    def __init__(
        self,
        index_folder: str | os.PathLike = "indexes",
        index_name: str = "colbert",
        override: bool = False,
        use_fast: bool = True,
        nbits: int = 4,
        kmeans_niters: int = 4,
        max_points_per_centroid: int = 256,
        n_samples_kmeans: int | None = None,
        seed: int = 42,
        use_triton: bool | None = None,
        n_ivf_probe: int | None = None,
        n_full_scores: int | None = None,
        batch_size: int | None = 1 << 18,
        num_threads: int | None = None,
        show_progress: bool = True,
        device: str | list[str] | None = None,
        low_memory: bool = False,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        if not use_fast:
            raise ValueError(
                "use_fast=False selects the Stanford PLAID backend; use "
                "indexes.StanfordPLAID for it."
            )
        # locals() holds the arguments; _plaid_params.PARAMETERS picks PLAID's.
        settings = plaid_settings(type(self).__name__, kwargs, locals())
        self.__dict__.update(settings)
        self.use_fast = True
        self._centroids: np.ndarray | None = None
        super().__init__(
            index_folder, index_name, override, show_progress, lock_timeout
        )

    # -- kind hooks --------------------------------------------------------------

    def _params(self) -> dict[str, Any]:
        return {"dim": self._dim, "nbits": self.nbits}

    def _load_codebook(self, array: np.ndarray | None) -> None:
        if array is not None and (array.ndim != 2 or array.dtype != np.float32):
            raise IndexFormatError(
                f"{self._store.path}: the PLAID codebook is not a float32 matrix."
            )
        self._centroids = array

    def _train(self, tokens_path: Path, num_tokens: int) -> np.ndarray:
        """k-means on a bounded random sample of a segment's tokens."""
        k = _ivf.default_num_centroids(num_tokens)
        size = min(
            num_tokens,
            k * self.max_points_per_centroid,
            self.n_samples_kmeans or SAMPLE_CAP,
        )
        rng = np.random.default_rng(self.seed)
        picked = np.sort(rng.choice(num_tokens, size=size, replace=False))
        parts = []
        for start in range(0, num_tokens, _CHUNK):
            inside = picked[(picked >= start) & (picked < start + _CHUNK)]
            if len(inside):
                block = _npy_stream.read_rows(tokens_path, start, start + _CHUNK)
                parts.append(np.asarray(block[inside - start], dtype=np.float32))
        sample = np.concatenate(parts)
        return _ivf.train_centroids(sample, k, self.kmeans_niters, self.seed)

    def _finish_segment(
        self, state: Any, folder: Path, txn: Transaction, offsets: np.ndarray
    ) -> None:
        tokens_path = folder / TOKENS
        num_tokens = int(offsets[-1])
        if self._centroids is None or txn.retrain:
            self._centroids = self._train(tokens_path, num_tokens)
            txn.set_codebook(self._centroids)
            txn.retrain = False
        codes = np.empty(num_tokens, dtype=np.int32)
        for start in range(0, num_tokens, _CHUNK):
            block = _npy_stream.read_rows(tokens_path, start, start + _CHUNK)
            codes[start : start + len(block)] = _ivf.assign(block, self._centroids)
        indptr, docs = _ivf.build_lists(codes, offsets, len(self._centroids))
        _npy_stream.save(folder / CODES, codes)
        _npy_stream.save(folder / INDPTR, indptr)
        _npy_stream.save(folder / DOCS, docs)

    def _open_segment(self, segment: OpenSegment, folder: Path) -> None:
        from ._segments import _load_npy

        indptr = _load_npy(folder / INDPTR)
        docs = _load_npy(folder / DOCS)
        k = 0 if self._centroids is None else len(self._centroids)
        if len(indptr) != k + 1 or (len(docs) and docs.max() >= len(segment.ids)):
            raise IndexFormatError(
                f"{folder}: its IVF lists do not match the codebook or its documents."
            )
        segment.extra.update(indptr=indptr, docs=docs)

    # -- search ------------------------------------------------------------------

    def _knobs(self, k: int) -> tuple[int, int]:
        probe = self.n_ivf_probe or _search.default_n_ivf_probe(len(self._centroids))
        full = self.n_full_scores or _search.default_n_full_scores(len(self._ids), k)
        return probe, full

    def _search_hits(
        self, queries: list[np.ndarray], k: int, allowed: list[np.ndarray] | None
    ) -> list[list[tuple[int, int, float]]]:
        views = [s.view() for s in self._segments]
        if allowed is None:
            tokens = sum(len(s.tokens) for s in self._segments)
        else:
            tokens = sum(
                int((s.offsets[a + 1] - s.offsets[a]).sum())
                for s, a in zip(self._segments, allowed)
            )
        if _search.prefer_exact(tokens):
            return _search.exact_search(queries, views, k, allowed)
        probe, full = self._knobs(k)
        return _search.search(queries, self._centroids, views, k, probe, full, allowed)

    # -- tuning hooks (see tuning.py) -------------------------------------------

    _knob_names = ("n_ivf_probe", "n_full_scores")

    def _current_setting(self, k: int) -> dict[str, int]:
        probe, full = self._knobs(k)
        return {"n_ivf_probe": probe, "n_full_scores": full}

    def _tune_grid(self, k: int) -> list[dict[str, int]]:
        from .tuning import grid

        num = len(self._centroids)
        probes = sorted({p for p in (1, 2, 4, 8, 16, 32) if p <= num} or {1})
        # Candidates re-scored: multiples of k, at most the collection.
        fulls = sorted({min(len(self._ids), m * k) for m in (1, 3, 10, 30, 100)})
        return grid(n_ivf_probe=probes, n_full_scores=fulls)

    def _search_keys(
        self, query: np.ndarray, k: int, n_ivf_probe: int, n_full_scores: int
    ) -> list[tuple[int, int]]:
        views = [s.view() for s in self._segments]
        hits = _search.search(
            [query], self._centroids, views, k, n_ivf_probe, n_full_scores
        )[0]
        return [(s, r) for s, r, _ in hits]

    def _apply_setting(self, setting: dict[str, int]) -> None:
        self.n_ivf_probe = int(setting["n_ivf_probe"])
        self.n_full_scores = int(setting["n_full_scores"])
