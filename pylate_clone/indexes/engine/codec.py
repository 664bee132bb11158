"""Residual compression of token vectors: a centroid code plus ``nbits`` per dimension.

A token ``x`` with nearest centroid ``c`` is stored as the centroid's number
and its residual ``r = x - c`` quantised dimension by dimension: dimension
``d`` has ``2**nbits`` buckets separated by ``2**nbits - 1`` cutoffs, and a
bucket stands for its weight (the mean residual of the training values that
fell in it). Cutoffs and weights are learned per dimension from a sample of
residuals (equal-count quantiles refined by a few Lloyd-Max rounds), so a
dimension with a wide spread gets wide buckets and a narrow one narrow
buckets. The reconstruction is ``c + weights[d, bucket[d]]`` in every
dimension, divided by its norm when the codec was trained on unit vectors
(``normalize``: ColBERT's tokens are unit-norm, and putting the reconstruction
back on the sphere removes the norm error of the quantised residual).

Bucket numbers are packed ``8 // nbits`` to a byte, dimension ``p * per + j``
of byte ``p`` in bits ``j * nbits`` upwards (``per = 8 // nbits``); a
dimension count that does not fill the last byte is padded with bucket 0.

Pure array functions, no I/O. The numpy functions are the CPU path; the
``*_torch`` ones do the same on torch tensors of any device (the ``device``
path of the index) and give the same bytes.

Interface contract (used by the index engine; keep it stable):

``check_nbits(nbits) -> int``
``code_dtype(num_centroids) -> np.dtype`` (uint16 up to 65,536 centroids)
``train_codec(residual_sample (S, D), nbits, device="cpu") -> Codec``
``compress(tokens (T, D), centroids (K, D), codes (T,), codec) -> (T, W) uint8``
``decompress(codes (T,), packed (T, W), centroids (K, D), codec) -> (T, D) float32``
``compress_torch`` / ``decompress_torch``: the same on tensors
``byte_table(codec) -> (W, 256, per) float32``: the residual of every byte
value at every byte position (the fused kernel's look-up table)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

NBITS = (1, 2, 4)
_BLOCK = 1 << 16  # tokens per block of compress/decompress (bounded scratch)
_LLOYD_ROUNDS = 40  # cheap rounds (prefix sums); 4 bits needs ~30 to settle


def check_nbits(nbits: object) -> int:
    """``nbits`` as an int, or a ValueError naming it (1, 2 or 4 are accepted)."""
    if isinstance(nbits, bool) or not isinstance(nbits, (int, np.integer)):
        raise ValueError(f"nbits must be one of 1, 2 or 4, got {nbits!r}.")
    if int(nbits) not in NBITS:
        raise ValueError(f"nbits must be one of 1, 2 or 4, got {nbits!r}.")
    return int(nbits)


def code_dtype(num_centroids: int) -> np.dtype:
    """Smallest dtype for centroid numbers: uint16 up to 65,536 centroids, else int32."""
    return np.dtype(np.uint16 if num_centroids <= 1 << 16 else np.int32)


def packed_width(dim: int, nbits: int) -> int:
    """Bytes per token of the packed residual: ``ceil(dim * nbits / 8)``."""
    return -(-dim * nbits // 8)


@dataclass(frozen=True)
class Codec:
    """Learned per-dimension quantiser of residuals.

    Attributes
    ----------
    nbits
        Bits per dimension (1, 2 or 4).
    cutoffs
        ``(D, 2**nbits - 1)`` float32, ascending per row: a residual value
        ``v`` of dimension ``d`` goes to bucket ``sum(v > cutoffs[d])``.
    weights
        ``(D, 2**nbits)`` float32: the value each bucket decodes to.
    normalize
        Whether a reconstruction is divided by its norm (unit-norm tokens).
    """

    nbits: int
    cutoffs: np.ndarray
    weights: np.ndarray
    normalize: bool = False

    def __post_init__(self) -> None:
        check_nbits(self.nbits)
        buckets = 1 << self.nbits
        cut, wts = np.asarray(self.cutoffs), np.asarray(self.weights)
        if (
            cut.ndim != 2
            or wts.ndim != 2
            or cut.shape != (wts.shape[0], buckets - 1)
            or wts.shape[1] != buckets
        ):
            raise ValueError(
                f"a {self.nbits}-bit codec needs cutoffs (D, {buckets - 1}) and "
                f"weights (D, {buckets}), got {cut.shape} and {wts.shape}."
            )
        if not (np.isfinite(cut).all() and np.isfinite(wts).all()):
            raise ValueError("codec cutoffs and weights must be finite.")

    @property
    def dim(self) -> int:
        return int(self.weights.shape[0])

    @property
    def width(self) -> int:
        """Packed bytes per token."""
        return packed_width(self.dim, self.nbits)

    def to_array(self) -> np.ndarray:
        """``(D, 2 * 2**nbits - 1)`` float32: cutoffs then weights (one file)."""
        return np.concatenate([self.cutoffs, self.weights], axis=1).astype(np.float32)

    @classmethod
    def from_array(
        cls, array: np.ndarray, nbits: int, normalize: bool = False
    ) -> Codec:
        """Inverse of :meth:`to_array`; a ValueError if the shape does not fit."""
        nbits = check_nbits(nbits)
        array = np.asarray(array, dtype=np.float32)
        buckets = 1 << nbits
        if array.ndim != 2 or array.shape[1] != 2 * buckets - 1:
            raise ValueError(
                f"a {nbits}-bit codec array must be (D, {2 * buckets - 1}), "
                f"got shape {array.shape}."
            )
        return cls(
            nbits, array[:, : buckets - 1].copy(), array[:, buckets - 1 :].copy()
        )


# -- training -------------------------------------------------------------------------


def train_codec(
    residual_sample: np.ndarray | torch.Tensor,
    nbits: int,
    device: str | torch.device = "cpu",
    normalize: bool = False,
) -> Codec:
    """Learn per-dimension cutoffs and weights from residuals ``(S, D)``.

    ``normalize`` is recorded in the codec (reconstructions divided by their
    norm: pass True when the tokens are unit vectors).

    Cutoffs start at the ``i / 2**nbits`` quantiles of each dimension (equal
    counts); then each round sets every weight to the mean of its bucket's
    values and every cutoff half-way between neighbouring weights (Lloyd-Max:
    each round lowers the squared error). Computed in float64. Runs through torch on ``device``.

    Raises
    ------
    ValueError
        For a bad ``nbits``, or a sample that is not a non-empty finite
        ``(S, D)`` matrix.
    """
    nbits = check_nbits(nbits)
    sample = torch.as_tensor(residual_sample).to(device=device, dtype=torch.float32)
    if sample.ndim != 2 or sample.shape[0] == 0 or sample.shape[1] == 0:
        raise ValueError(
            "residual_sample must be a non-empty (S, D) matrix, got shape "
            f"{tuple(sample.shape)}."
        )
    if not bool(torch.isfinite(sample).all()):
        raise ValueError("residual_sample contains NaN or inf.")
    buckets = 1 << nbits
    # One sorted row per dimension and its prefix sums: a bucket's mean is then
    # two look-ups, so a Lloyd round costs O(D * B * log S), not a pass over S.
    ordered = sample.T.contiguous().sort(dim=1).values.double()  # (D, S)
    prefix = torch.nn.functional.pad(ordered.cumsum(dim=1), (1, 0))
    count = ordered.shape[1]
    at = torch.arange(1, buckets, device=sample.device) * count // buckets
    cutoffs = ordered[:, at.clamp_max(count - 1)]  # (D, B - 1) equal-count start
    weights = _bucket_means(ordered, prefix, cutoffs)
    for _ in range(_LLOYD_ROUNDS):
        cutoffs = 0.5 * (weights[:, 1:] + weights[:, :-1])
        weights = _bucket_means(ordered, prefix, cutoffs)
    return Codec(
        nbits,
        cutoffs.cpu().numpy().astype(np.float32),
        weights.cpu().numpy().astype(np.float32),
        bool(normalize),
    )


def _bucket_means(
    ordered: torch.Tensor, prefix: torch.Tensor, cutoffs: torch.Tensor
) -> torch.Tensor:
    """``(D, B)`` mean of each dimension's values per bucket (values ``> cutoff``
    go up, as in :func:`bucketize`).

    An empty bucket (many equal values) takes the midpoint of its cutoffs, so
    weights stay ordered and finite.
    """
    count = ordered.shape[1]
    inner = torch.searchsorted(ordered, cutoffs.contiguous(), right=True)  # (D, B-1)
    zero = torch.zeros_like(inner[:, :1])
    lo = torch.cat([zero, inner], dim=1)
    hi = torch.cat([inner, zero + count], dim=1)
    sums = prefix.gather(1, hi) - prefix.gather(1, lo)
    sizes = (hi - lo).double()
    lower = torch.cat([ordered[:, :1], cutoffs], dim=1)
    upper = torch.cat([cutoffs, ordered[:, -1:]], dim=1)
    means = torch.where(sizes > 0, sums / sizes.clamp_min(1), 0.5 * (lower + upper))
    return means


# -- numpy path -----------------------------------------------------------------------


def _check_codes(codes: np.ndarray, num_tokens: int, num_centroids: int) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.shape != (num_tokens,) or codes.dtype.kind not in "iu":
        raise ValueError(
            f"codes must be ({num_tokens},) integers, got shape {codes.shape} "
            f"dtype {codes.dtype}."
        )
    if num_tokens and (int(codes.min()) < 0 or int(codes.max()) >= num_centroids):
        bad = int(np.flatnonzero((codes < 0) | (codes >= num_centroids))[0])
        raise ValueError(
            f"codes[{bad}] = {codes[bad]} is not a centroid number in "
            f"[0, {num_centroids})."
        )
    return codes


def _check_dims(tokens_dim: int, centroids_shape: tuple, codec: Codec) -> None:
    if len(centroids_shape) != 2 or centroids_shape[1] != tokens_dim:
        raise ValueError(
            f"centroids must be (K, {tokens_dim}), got shape {tuple(centroids_shape)}."
        )
    if codec.dim != tokens_dim:
        raise ValueError(
            f"the codec is for dimension {codec.dim}, the tokens have {tokens_dim}."
        )


def bucketize(residuals: np.ndarray, codec: Codec) -> np.ndarray:
    """``(T, D)`` uint8 bucket number of every residual value."""
    residuals = np.asarray(residuals, dtype=np.float32)
    out = np.zeros(residuals.shape, dtype=np.uint8)
    for j in range(codec.cutoffs.shape[1]):  # one pass per cutoff, no (T, D, B) temp
        out += residuals > codec.cutoffs[:, j]
    return out


def pack(buckets: np.ndarray, nbits: int) -> np.ndarray:
    """``(T, D)`` bucket numbers (each below ``2**nbits``) -> ``(T, W)`` uint8."""
    nbits = check_nbits(nbits)
    buckets = np.asarray(buckets, dtype=np.uint8)
    per = 8 // nbits
    count, dim = buckets.shape
    padded = np.zeros((count, packed_width(dim, nbits) * per), dtype=np.uint8)
    padded[:, :dim] = buckets
    groups = padded.reshape(count, -1, per)
    out = np.zeros(groups.shape[:2], dtype=np.uint8)
    for j in range(per):
        out |= groups[:, :, j] << np.uint8(j * nbits)
    return out


def unpack(packed: np.ndarray, nbits: int, dim: int) -> np.ndarray:
    """Inverse of :func:`pack`: ``(T, W)`` uint8 -> ``(T, dim)`` uint8 buckets."""
    nbits = check_nbits(nbits)
    packed = np.asarray(packed, dtype=np.uint8)
    if packed.ndim != 2 or packed.shape[1] != packed_width(dim, nbits):
        raise ValueError(
            f"packed must be (T, {packed_width(dim, nbits)}) for dimension {dim} at "
            f"{nbits} bits, got shape {packed.shape}."
        )
    per = 8 // nbits
    shifts = (np.arange(per, dtype=np.uint8) * nbits).astype(np.uint8)
    mask = np.uint8((1 << nbits) - 1)
    values = (packed[:, :, None] >> shifts) & mask
    return values.reshape(len(packed), -1)[:, :dim]


def compress(
    tokens: np.ndarray, centroids: np.ndarray, codes: np.ndarray, codec: Codec
) -> np.ndarray:
    """Packed residuals ``(T, W)`` uint8 of ``tokens`` against their centroids.

    ``tokens`` may be float16 or float32, or a memory map: it is read in
    blocks, so memory stays bounded.
    """
    centroids = np.asarray(centroids, dtype=np.float32)
    if np.ndim(tokens) != 2:
        raise ValueError(f"tokens must be (T, D), got shape {np.shape(tokens)}.")
    _check_dims(tokens.shape[1], centroids.shape, codec)
    codes = _check_codes(codes, len(tokens), len(centroids))
    out = np.empty((len(tokens), codec.width), dtype=np.uint8)
    for start in range(0, len(tokens), _BLOCK):
        block = np.asarray(tokens[start : start + _BLOCK], dtype=np.float32)
        residual = block - centroids[codes[start : start + len(block)]]
        out[start : start + len(block)] = pack(bucketize(residual, codec), codec.nbits)
    return out


def decompress(
    codes: np.ndarray, packed: np.ndarray, centroids: np.ndarray, codec: Codec
) -> np.ndarray:
    """Reconstructed tokens ``(T, D)`` float32: centroid plus bucket weights."""
    centroids = np.asarray(centroids, dtype=np.float32)
    _check_dims(codec.dim, centroids.shape, codec)
    codes = _check_codes(codes, len(packed), len(centroids))
    buckets = 1 << codec.nbits
    flat_weights = codec.weights.reshape(-1)
    base = np.arange(codec.dim, dtype=np.intp) * buckets
    out = np.empty((len(packed), codec.dim), dtype=np.float32)
    for start in range(0, len(packed), _BLOCK):
        part = unpack(packed[start : start + _BLOCK], codec.nbits, codec.dim)
        block = centroids[codes[start : start + len(part)]] + flat_weights[base + part]
        if codec.normalize:
            block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        out[start : start + len(part)] = block
    return out


def byte_table(codec: Codec) -> np.ndarray:
    """``(W, 256, per)`` float32: residual of each byte value at each byte position.

    ``table[p, v, j]`` is the weight of dimension ``p * per + j`` for the bucket
    stored in bits ``j * nbits`` of byte value ``v`` (0 past the last
    dimension). Decoding a token is then one look-up per byte instead of one
    shift, mask and look-up per dimension.
    """
    per = 8 // codec.nbits
    mask = (1 << codec.nbits) - 1
    weights = np.zeros((codec.width * per, 1 << codec.nbits), dtype=np.float32)
    weights[: codec.dim] = codec.weights
    values = np.arange(256)
    table = np.empty((codec.width, 256, per), dtype=np.float32)
    for j in range(per):
        bucket = (values >> (j * codec.nbits)) & mask  # (256,)
        table[:, :, j] = weights[j::per][:, bucket]
    return table


# -- torch path (any device) ------------------------------------------------------------


def _weights_t(codec: Codec, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(codec.weights).to(device)


def compress_torch(
    tokens: torch.Tensor, centroids: torch.Tensor, codes: torch.Tensor, codec: Codec
) -> torch.Tensor:
    """:func:`compress` on tensors: ``(T, W)`` uint8 on the tokens' device."""
    device = tokens.device
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be (T, D), got shape {tuple(tokens.shape)}.")
    _check_dims(tokens.shape[1], tuple(centroids.shape), codec)
    cutoffs = torch.from_numpy(codec.cutoffs).to(device)
    per = 8 // codec.nbits
    width = codec.width
    shifts = torch.arange(per, device=device, dtype=torch.int32) * codec.nbits
    out = torch.empty((len(tokens), width), dtype=torch.uint8, device=device)
    codes = codes.to(device=device, dtype=torch.long)
    centroids = centroids.to(device=device, dtype=torch.float32)
    for start in range(0, len(tokens), _BLOCK):
        block = tokens[start : start + _BLOCK].float()
        residual = block - centroids[codes[start : start + len(block)]]
        # sum(v > cutoffs[d]) per dimension, as the numpy path
        bucket = torch.searchsorted(cutoffs, residual.T.contiguous()).T
        padded = torch.zeros(
            (len(block), width * per), dtype=torch.int32, device=device
        )
        padded[:, : codec.dim] = bucket.to(torch.int32)
        packed = (padded.view(len(block), width, per) << shifts).sum(dim=2)
        out[start : start + len(block)] = packed.to(torch.uint8)
    return out


def decompress_torch(
    codes: torch.Tensor, packed: torch.Tensor, centroids: torch.Tensor, codec: Codec
) -> torch.Tensor:
    """:func:`decompress` on tensors: ``(T, D)`` float32 on the codes' device."""
    device = packed.device
    per = 8 // codec.nbits
    if packed.ndim != 2 or packed.shape[1] != codec.width:
        raise ValueError(
            f"packed must be (T, {codec.width}), got shape {tuple(packed.shape)}."
        )
    mask = (1 << codec.nbits) - 1
    shifts = torch.arange(per, device=device, dtype=torch.int32) * codec.nbits
    base = torch.arange(codec.dim, device=device) * (1 << codec.nbits)
    flat_weights = _weights_t(codec, device).reshape(-1)
    centroids = centroids.to(device=device, dtype=torch.float32)
    codes = codes.to(device=device, dtype=torch.long)
    buckets = (packed.to(torch.int32)[:, :, None] >> shifts) & mask
    buckets = buckets.reshape(len(packed), -1)[:, : codec.dim].long()
    decoded = centroids[codes] + flat_weights[base + buckets]
    if codec.normalize:
        decoded = decoded / decoded.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return decoded
