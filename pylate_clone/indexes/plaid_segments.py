"""PLAID's compressed segment files: written from the staged tokens, opened for search.

A format-3 PLAID segment holds, instead of ``tokens.npy``::

    codes.npy        (T,) uint16 (int32 past 65,536 centroids) centroid numbers
    residuals.npy    (T, W) uint8 packed residual shapes (engine/codec.py)
    gains.npy        (T,) float16 residual norms
    ivf_indptr.npy / ivf_docs.npy   the inverted lists

The segment writer streams the documents into a staged ``tokens.npy`` first
(bounded memory); :func:`write_codes` reads it back in blocks, writes the
files above and deletes it before the segment is sealed, so a committed
segment never holds both. Format-2 segments (``tokens.npy`` + int32 codes)
open as before and are re-scored from their float16 vectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .engine import codec as _codec
from .engine import ivf
from .engine.codec_torch import compress_torch, decompress_torch
from .engine.compressed import ScoringBook, inverse_norms
from .engine.token_stage import TokenLists
from .storage import npy_stream
from .storage.commit import IndexFormatError
from .storage.segments import OpenSegment, _load_npy

CODES, RESIDUALS, GAINS = "codes.npy", "residuals.npy", "gains.npy"
_CHUNK = 1 << 16  # token rows read at a time from the staged tokens
_UNIT_TOLERANCE = 1e-2  # |norm - 1| below which a sample counts as unit vectors


def read_sample(tokens_path: Path, num_tokens: int, size: int, seed: int) -> np.ndarray:
    """``size`` distinct token rows drawn with ``seed``, float32, in random order."""
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(num_tokens, size=min(size, num_tokens), replace=False))
    parts = []
    for start in range(0, num_tokens, _CHUNK):
        inside = picked[(picked >= start) & (picked < start + _CHUNK)]
        if len(inside):
            block = npy_stream.read_rows(tokens_path, start, start + _CHUNK)
            parts.append(np.asarray(block[inside - start], dtype=np.float32))
    # Shuffled: a caller taking a prefix (k-means' cap) gets a uniform sample.
    return np.concatenate(parts)[rng.permutation(len(picked))]


def train_codec(
    sample: np.ndarray,
    centroids: np.ndarray,
    nbits: int,
    device: torch.device | None,
) -> _codec.Codec:
    """The residual codec of a token sample; renormalising when it is unit vectors."""
    norms = np.linalg.norm(sample, axis=1)
    unit = bool(np.abs(norms - 1).max(initial=0) < _UNIT_TOLERANCE)
    codes = ivf.assign(sample, centroids, device=device)
    return _codec.train_codec(
        sample, centroids, codes, nbits, normalize=unit, device=device or "cpu"
    )


def write_codes(
    folder: Path,
    tokens_path: Path,
    num_tokens: int,
    centroids: np.ndarray,
    codec: _codec.Codec,
    device: torch.device | None,
) -> np.ndarray:
    """Write codes, residuals and gains of the staged tokens; returns the codes.

    ``tokens_path`` is deleted once the files are written. With ``device``
    the assignment and compression run there through torch.
    """
    codes = np.empty(num_tokens, dtype=_codec.code_dtype(len(centroids)))
    residuals = npy_stream.NpyAppender(folder / RESIDUALS, np.uint8, (codec.width,))
    gains = npy_stream.NpyAppender(folder / GAINS, np.float16, ())
    centroids_t = None if device is None else torch.from_numpy(centroids).to(device)
    try:
        for start in range(0, num_tokens, _CHUNK):
            block = npy_stream.read_rows(tokens_path, start, start + _CHUNK)
            part = ivf.assign(block, centroids, device=device)
            codes[start : start + len(block)] = part
            if device is None:
                packed, gain = _codec.compress(block, centroids, part, codec)
            else:
                block_t = torch.from_numpy(np.asarray(block)).to(device)
                part_t = torch.from_numpy(part.astype(np.int64)).to(device)
                packed_t, gain_t = compress_torch(block_t, centroids_t, part_t, codec)
                packed, gain = packed_t.cpu().numpy(), gain_t.cpu().numpy()
            residuals.append(packed)
            gains.append(gain)
        residuals.close()
        gains.close()
    except BaseException:
        residuals.abort()
        gains.abort()
        raise
    npy_stream.save(folder / CODES, codes)
    tokens_path.unlink()
    return codes


def open_codes(
    segment: OpenSegment,
    folder: Path,
    centroids: np.ndarray,
    codec: _codec.Codec | None,
    device: torch.device | None,
    book: ScoringBook | None = None,
) -> None:
    """Load a compressed segment's arrays into ``segment.extra`` and its decoder.

    ``book`` (the index's tables for ``codec``, CPU only) also gives each
    token's ``1 / |c + g w|`` (``extra["scales"]``) and the tokens regrouped
    by centroid for the token stage (``extra["token_lists"]``), once per
    segment.

    Raises
    ------
    IndexFormatError
        If the index has no codec, or the arrays disagree with it or with
        the segment's token count.
    """
    if codec is None:
        raise IndexFormatError(f"{folder} holds codes but the index has no codec.")
    codes = _load_npy(folder / CODES, mmap=True)
    packed = _load_npy(folder / RESIDUALS, mmap=True)
    gains = np.asarray(_load_npy(folder / GAINS), dtype=np.float32)
    count = segment.num_tokens
    if (
        codes.shape != (count,)
        or codes.dtype.kind not in "iu"
        or packed.shape != (count, codec.width)
        or packed.dtype != np.uint8
        or gains.shape != (count,)
        or (count and int(codes.max()) >= len(centroids))
    ):
        raise IndexFormatError(
            f"{folder}: {CODES}, {RESIDUALS} and {GAINS} do not match the codec "
            "or the segment's offsets."
        )
    segment.extra.update(codes=codes, packed=packed, gains=gains)
    if device is None and book is not None:
        # 1 / |c + g w| once per segment: the fused kernel then takes q . c
        # from the probe's centroid scores and decodes only g w.
        scales = inverse_norms(book, codes, packed, gains)
        segment.extra["scales"] = scales
        # The token stage reads each probed centroid's tokens in a row: a
        # copy regrouped by centroid, in memory only (docs/index_engine.md).
        segment.extra["token_lists"] = TokenLists.build(
            codes, packed, gains, scales, segment.offsets, len(centroids)
        )

    def decode(start: int, end: int) -> np.ndarray:
        return _codec.decompress(
            codes[start:end], packed[start:end], gains[start:end], centroids, codec
        )

    if device is not None:
        segment.extra.update(
            device_codes=torch.from_numpy(codes.astype(np.int64)).to(device),
            device_packed=torch.from_numpy(np.array(packed)).to(device),
            device_gains=torch.from_numpy(gains).to(device),
        )
        centroids_t = torch.from_numpy(centroids).to(device)

        def decode(start: int, end: int) -> np.ndarray:  # noqa: F811 - device path
            extra = segment.extra
            return (
                decompress_torch(
                    extra["device_codes"][start:end],
                    extra["device_packed"][start:end],
                    extra["device_gains"][start:end],
                    centroids_t,
                    codec,
                )
                .cpu()
                .numpy()
            )

    segment.decoder = decode
