"""PLAID index on the segment engine: centroid IVF candidates, scores from residual codes."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import plaid_segments as codes_files
from .compat.plaid_params import plaid_settings
from .engine import ivf, search
from .engine.codec import Codec, check_nbits
from .engine.compressed import ScoringBook
from .segmented.documents import widened_probe
from .segmented.end_to_end import EndToEndIndex
from .segmented.views import segment_view
from .storage import npy_stream
from .storage.commit import DEFAULT_LOCK_TIMEOUT, IndexFormatError
from .storage.faults import crash_point
from .storage.segments import TOKENS, OpenSegment, Transaction, _load_npy
from .tuning import Tunable

logger = logging.getLogger(__name__)

SAMPLE_CAP = 1 << 18  # token vectors at most in the k-means sample
_CHUNK = 1 << 16  # token rows read at a time when scanning a segment

CODES, INDPTR, DOCS = "codes.npy", "ivf_indptr.npy", "ivf_docs.npy"
RESIDUALS = codes_files.RESIDUALS


class PLAID(Tunable, EndToEndIndex):
    """PLAID-style end-to-end index: IVF candidates, MaxSim from residual codes.

    Token vectors are stored compressed in immutable segments: the first
    build trains a codebook (spherical k-means on a bounded sample) and a
    residual codec (per-dimension buckets, ``nbits`` bits per dimension);
    every token is stored as its nearest centroid, the norm of its residual
    and the residual's direction quantised (``engine/codec.py``), and each
    segment keeps inverted lists centroid -> documents. A query probes its
    tokens' ``n_ivf_probe`` best centroids. On the CPU every document token
    of a probed centroid is scored exactly from its codes against the query
    tokens that probed it, the others estimated by the next centroid's score
    (the token stage, ``engine/token_stage.py``; the segment's tokens are
    regrouped by centroid in memory when it opens); with a torch ``device``
    the probe's best candidates are scored from their tokens' centroid codes
    alone. The ``n_full_scores`` best are re-scored with MaxSim straight
    from the codes (a fused decode + MaxSim kernel that takes the centroid
    part from the query-centroid scores; no decoded copy is kept). When the collection (or the ``subset``) is small enough, every
    document is scored instead. No full-precision copy is stored.

    Later writes assign and compress new tokens with the existing codebook
    and codec (cost proportional to the change); :meth:`compact` retrains
    both on the live collection. Folders of format 2 (float16 vectors)
    still open and search; :meth:`compact` converts them.

    Parameters follow PyLate 1.6.0's ``PLAID`` (same names and order).
    ``use_triton``, ``batch_size``, ``num_threads`` and ``low_memory``
    configured fast-plaid; they are validated and recorded but not used
    (``indexes.FastPlaid`` keeps the fast-plaid backend). ``n_ivf_probe`` /
    ``n_full_scores`` left to None use the
    engine's measured defaults (``search.default_*``); :meth:`tune` picks
    them for a sample of queries.

    Parameters
    ----------
    index_folder, index_name, override
        Folder ``{index_folder}/{index_name}``; ``override`` empties it.
    use_fast
        Must be True (the Stanford backend is a separate class).
    nbits
        Bits per dimension of the stored residuals: 1, 2 or 4 (about 20, 36
        and 68 bytes per token at dimension 128, plus the inverted lists).
    kmeans_niters
        k-means iterations of the codebook training.
    max_points_per_centroid
        Sample size cap per centroid for k-means (the sample is also capped
        at :data:`SAMPLE_CAP` token vectors so memory stays bounded).
    n_samples_kmeans
        Token vectors sampled for k-means; None uses the caps above.
    seed
        Seed of the sampling and of k-means.
    use_triton, batch_size, num_threads, low_memory
        Accepted for PyLate compatibility (validated, not used).
    device
        None: build and search on the CPU with numpy and numba. A torch
        device (``"cuda"``, ``"cuda:1"``, ``"cpu"``, or a list whose first
        entry is used): k-means, assignment, compression and candidate
        scoring run through torch there, the segments' codes kept on it.
    n_ivf_probe
        Centroids probed per query token; None: engine default.
    n_full_scores
        Candidates re-scored with MaxSim from their decoded codes (the best
        by the token stage, or on a torch device by their centroid-code
        score from a pool twice as deep); None: engine default.
    show_progress
        Progress bar while adding documents.
    lock_timeout
        Seconds a writer waits for another process's write.
    """

    kind = "plaid"
    retired_versions = {
        1: "was written by the fast-plaid PLAID of an earlier release (format 1). "
        "Open it with indexes.FastPlaid(...), or rebuild it with indexes.PLAID to "
        "get the segment engine."
    }

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
        self.nbits = check_nbits(self.nbits)
        self._device = _torch_device(self.device)
        self._codec: Codec | None = None
        self._normalize = False
        self._book: ScoringBook | None = None
        self.use_fast = True
        self._centroids: np.ndarray | None = None
        super().__init__(
            index_folder, index_name, override, show_progress, lock_timeout
        )

    # -- kind hooks --------------------------------------------------------------

    def _params(self) -> dict[str, Any]:
        return {"dim": self._dim, "nbits": self.nbits, "normalize": self._normalize}

    def _apply_params(self, params: dict[str, Any]) -> None:
        super()._apply_params(params)
        # Written with the codec; False for format-2 folders (no codec yet).
        self._normalize = bool(params.get("normalize", False))

    def _load_codebook(
        self, array: np.ndarray | None, codec: np.ndarray | None = None
    ) -> None:
        if array is not None and (array.ndim != 2 or array.dtype != np.float32):
            raise IndexFormatError(
                f"{self._store.path}: the PLAID codebook is not a float32 matrix."
            )
        self._centroids, self._codec, self._book = array, None, None
        if codec is not None:
            # (D, 2 * 2**nbits - 1) columns: the file says its own bit count.
            nbits = {3: 1, 7: 2, 31: 4}.get(codec.shape[1] if codec.ndim == 2 else 0)
            try:
                self._codec = Codec.from_array(codec, nbits, self._normalize)
            except ValueError as error:
                raise IndexFormatError(
                    f"{self._store.path}: the PLAID codec is malformed ({error})."
                ) from None

    def _train(self, sample: np.ndarray, num_tokens: int) -> np.ndarray:
        """k-means on a bounded random sample of a segment's tokens."""
        k = ivf.default_num_centroids(num_tokens)
        return ivf.train_centroids(
            sample[: k * self.max_points_per_centroid],
            k,
            self.kmeans_niters,
            self.seed,
            device=self._device,
        )

    def _finish_segment(
        self, state: Any, folder: Path, txn: Transaction, offsets: np.ndarray
    ) -> None:
        tokens_path = folder / TOKENS
        num_tokens = int(offsets[-1])
        retrain = self._centroids is None or txn.retrain
        if retrain or self._codec is None:
            size = self.n_samples_kmeans or SAMPLE_CAP
            sample = codes_files.read_sample(tokens_path, num_tokens, size, self.seed)
        if retrain:
            self._centroids = self._train(sample, num_tokens)
            txn.set_codebook(self._centroids)
            txn.retrain = False
        if retrain or self._codec is None:
            self._codec = codes_files.train_codec(
                sample, self._centroids, self.nbits, self._device
            )
            self._normalize = self._codec.normalize
            txn.set_codec(self._codec.to_array())
            txn.params = {**txn.params, **self._params()}
            crash_point("codec_written")
        codes = codes_files.write_codes(
            folder, tokens_path, num_tokens, self._centroids, self._codec, self._device
        )
        crash_point("codes_written")
        indptr, docs = ivf.build_lists(codes, offsets, len(self._centroids))
        npy_stream.save(folder / INDPTR, indptr)
        npy_stream.save(folder / DOCS, docs)

    def _open_segment(self, segment: OpenSegment, folder: Path) -> None:
        if segment.tokens is None:  # format 3: compressed vectors
            codes_files.open_codes(
                segment,
                folder,
                self._centroids,
                self._codec,
                self._device,
                # The index's cached tables, not a copy built per segment.
                None if self._device is not None else self._scoring_book(),
            )
        indptr = _load_npy(folder / INDPTR)
        docs = _load_npy(folder / DOCS)
        k = 0 if self._centroids is None else len(self._centroids)
        if len(indptr) != k + 1 or (len(docs) and docs.max() >= len(segment.ids)):
            raise IndexFormatError(
                f"{folder}: its IVF lists do not match the codebook or its documents."
            )
        segment.extra.update(indptr=indptr, docs=docs)

    def get_documents_embeddings(
        self, document_ids: list[list[Any]]
    ) -> list[list[np.ndarray]]:
        """Reconstructed token vectors of documents, grouped like ``document_ids``.

        PLAID keeps no full-precision copy: each vector is rebuilt from its
        codes (centroid plus gain times the quantised residual direction),
        so it is close to, not equal to, the vector that was added. Segments
        of a format-2 folder return their stored float16 vectors. Per group,
        per document, a float32 ``(L_d, H)`` matrix; a ``KeyError`` names an
        id that is not in the index.
        """
        return super().get_documents_embeddings(document_ids)

    # -- search ------------------------------------------------------------------

    def _scoring_book(self) -> ScoringBook | None:
        """The fused kernel's tables for the current codebook (built once)."""
        if self._codec is None:
            return None
        book = self._book
        if book is None or book.codec is not self._codec:
            book = ScoringBook.build(self._centroids, self._codec, self._device)
            self._book = book
        return book

    @property
    def _token_stage(self) -> bool:
        """Whether candidates are ranked by the token stage: compressed
        segments on the numba path (no ``device``)."""
        return self._device is None and self._codec is not None

    def _knobs(self, k: int) -> tuple[int, int]:
        probe = self.n_ivf_probe or search.default_n_ivf_probe(len(self._centroids))
        full = self.n_full_scores or search.default_n_full_scores(
            len(self._ids),
            k,
            None if self._codec is None else self._codec.nbits,
            token_stage=self._token_stage,
        )
        return probe, full

    def _search_hits(
        self, queries: list[np.ndarray], k: int, allowed: list[np.ndarray] | None
    ) -> list[list[tuple[int, int, float]]]:
        views = [segment_view(s) for s in self._segments]
        total = sum(s.num_tokens for s in self._segments)
        if allowed is None:
            tokens = total
        else:
            tokens = sum(
                int((s.offsets[a + 1] - s.offsets[a]).sum())
                for s, a in zip(self._segments, allowed)
            )
        book = self._scoring_book()
        probe, full = self._knobs(k)
        rescored = None
        if allowed is not None and self._device is None:
            # The token stage skips filtered-out rows before decoding: the
            # IVF path costs about an unfiltered query, so scan only subsets
            # smaller than what it would re-score anyway.
            docs = sum(len(s.offsets) - 1 for s in self._segments)
            rescored = full * total // max(1, docs)
        if search.prefer_exact(tokens, rescored):
            return search.exact_search(queries, views, k, allowed, book=book)
        if allowed is not None:
            # A filter or subset leaves fewer allowed documents in each probed
            # list: probe more lists, the more so the more selective it is.
            share = sum(len(a) for a in allowed) / max(1, len(self._ids))
            power = search.filter_probe_power(self._token_stage)
            probe = widened_probe(probe, share, len(self._centroids), power)
        return search.search(
            queries, self._centroids, views, k, probe, full, allowed, book=book
        )

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
        views = [segment_view(s) for s in self._segments]
        hits = search.search(
            [query], self._centroids, views, k, n_ivf_probe, n_full_scores,
            book=self._scoring_book(),
        )[0]  # fmt: skip
        return [(s, r) for s, r, _ in hits]

    def _apply_setting(self, setting: dict[str, int]) -> None:
        self.n_ivf_probe = int(setting["n_ivf_probe"])
        self.n_full_scores = int(setting["n_full_scores"])


def _torch_device(device: str | list[str] | None) -> torch.device | None:
    """``device`` as a torch device (a list's first entry), or a ValueError naming it."""
    if device is None:
        return None
    name = device[0] if isinstance(device, list) else device
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(
            f"device must be None or a torch device name such as 'cpu' or 'cuda', "
            f"got {device!r}."
        ) from None
