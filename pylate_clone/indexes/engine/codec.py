"""Residual compression of token vectors: a centroid code, a gain and ``nbits`` per dimension.

A token ``x`` with nearest centroid ``c`` is stored as the centroid's number,
the norm ``g`` of its residual ``u = x - c`` (float16, the *gain*) and the
direction ``u / g`` (the *shape*) quantised dimension by dimension: dimension
``d`` has ``2**nbits`` buckets separated by ``2**nbits - 1`` cutoffs, and a
bucket stands for its weight (the mean of the training values that fell in
it). Cutoffs and weights are learned per dimension from a sample of shapes
(equal-count quantiles refined by Lloyd-Max rounds), so a dimension with a
wide spread gets wide buckets and a narrow one narrow buckets; the gain
spends the buckets on each token's own residual scale, whether its cluster
is tight or loose. The reconstruction is ``c + g * weights[d, bucket[d]]``.

``normalize`` (unit-norm tokens, as ColBERT's): the reconstruction is divided
by its norm, and the residual is taken from ``x / <x, c>`` instead of ``x``
(the same direction, so the same unit vector after normalisation), which
makes it orthogonal to ``c``: no bucket is spent on the component along the
centroid, which the normalisation restores. ``<x, c>`` is floored at
:data:`MIN_COSINE` so a badly assigned token cannot blow up its residual.

Bucket numbers are packed ``8 // nbits`` to a byte, dimension ``p * per + j``
of byte ``p`` in bits ``j * nbits`` upwards (``per = 8 // nbits``); a
dimension count that does not fill the last byte is padded with bucket 0.

Pure array functions, no I/O. These are the CPU path; :mod:`.codec_torch`
does the same on torch tensors of any device and gives the same bytes.

Interface contract (used by the index engine; keep it stable):

``check_nbits(nbits) -> int``
``code_dtype(num_centroids) -> np.dtype`` (uint16 up to 65,536 centroids)
``train_codec(tokens (S, D), centroids (K, D), codes (S,), nbits, normalize)
    -> Codec``
``compress(tokens (T, D), centroids, codes (T,), codec)
    -> (packed (T, W) uint8, gains (T,) float16)``
``decompress(codes, packed, gains, centroids, codec) -> (T, D) float32``
``byte_table(codec) -> (W, 256, per) float32``: the weight of every byte
value at every byte position (the fused kernel's look-up table)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

NBITS = (1, 2, 4)
_BLOCK = 1 << 16  # tokens per block of compress/decompress (bounded scratch)
MIN_COSINE = 0.2  # floor of <x, c> when residuals are taken from x / <x, c>
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
        cutoffs, weights = array[:, : buckets - 1], array[:, buckets - 1 :]
        return cls(nbits, cutoffs.copy(), weights.copy(), bool(normalize))


# -- training -------------------------------------------------------------------------


def shapes(
    tokens: np.ndarray | torch.Tensor,
    centroids: np.ndarray | torch.Tensor,
    codes: np.ndarray | torch.Tensor,
    normalize: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit residual directions ``(T, D)`` and gains ``(T,)`` (float32 tensors).

    Runs in torch on the device of ``tokens`` (numpy arrays run on the CPU).
    """
    x = torch.as_tensor(tokens).float()
    c = torch.as_tensor(centroids).to(device=x.device, dtype=torch.float32)
    c = c[torch.as_tensor(codes).to(device=x.device, dtype=torch.long)]
    if normalize:
        x = x / (x * c).sum(dim=1, keepdim=True).clamp_min(MIN_COSINE)
    residual = x - c
    gains = residual.norm(dim=1)
    return residual / gains.clamp_min(1e-12)[:, None], gains


def train_codec(
    tokens: np.ndarray | torch.Tensor,
    centroids: np.ndarray | torch.Tensor,
    codes: np.ndarray | torch.Tensor,
    nbits: int,
    normalize: bool = False,
    device: str | torch.device = "cpu",
) -> Codec:
    """Learn the codec from a sample of tokens ``(S, D)`` and their codes.

    ``normalize``: the tokens are unit vectors (see the module docstring).
    Runs through torch on ``device``.

    Raises
    ------
    ValueError
        For a bad ``nbits``, or a sample that is not a non-empty finite
        ``(S, D)`` matrix.
    """
    nbits = check_nbits(nbits)
    sample = torch.as_tensor(tokens).to(device=device, dtype=torch.float32)
    if sample.ndim != 2 or sample.shape[0] == 0 or sample.shape[1] == 0:
        raise ValueError(
            f"tokens must be a non-empty (S, D) matrix, got shape {tuple(sample.shape)}."
        )
    if not bool(torch.isfinite(sample).all()):
        raise ValueError("tokens contains NaN or inf.")
    direction, _ = shapes(sample, centroids, codes, normalize)
    cutoffs, weights = fit_buckets(direction, nbits)
    return Codec(nbits, cutoffs, weights, bool(normalize))


def fit_buckets(
    values: np.ndarray | torch.Tensor, nbits: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension Lloyd-Max quantiser of ``values`` ``(S, D)``.

    Cutoffs start at the ``i / 2**nbits`` quantiles of each dimension (equal
    counts); then each round sets every weight to the mean of its bucket's
    values and every cutoff half-way between neighbouring weights (each round
    lowers the squared error). Computed in float64 on the values' device.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        float32 cutoffs ``(D, 2**nbits - 1)`` and weights ``(D, 2**nbits)``.
    """
    nbits = check_nbits(nbits)
    sample = torch.as_tensor(values).float()
    if sample.ndim != 2 or sample.shape[0] == 0 or sample.shape[1] == 0:
        raise ValueError(
            f"values must be a non-empty (S, D) matrix, got shape {tuple(sample.shape)}."
        )
    if not bool(torch.isfinite(sample).all()):
        raise ValueError("values contains NaN or inf.")
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
    return (
        cutoffs.cpu().numpy().astype(np.float32),
        weights.cpu().numpy().astype(np.float32),
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
) -> tuple[np.ndarray, np.ndarray]:
    """Packed shapes ``(T, W)`` uint8 and gains ``(T,)`` float16 of ``tokens``.

    ``tokens`` may be float16 or float32, or a memory map: it is read in
    blocks, so memory stays bounded.
    """
    centroids = np.asarray(centroids, dtype=np.float32)
    if np.ndim(tokens) != 2:
        raise ValueError(f"tokens must be (T, D), got shape {np.shape(tokens)}.")
    _check_dims(tokens.shape[1], centroids.shape, codec)
    codes = _check_codes(codes, len(tokens), len(centroids))
    packed = np.empty((len(tokens), codec.width), dtype=np.uint8)
    gains = np.empty(len(tokens), dtype=np.float16)
    for start in range(0, len(tokens), _BLOCK):
        block = np.asarray(tokens[start : start + _BLOCK], dtype=np.float32)
        part = codes[start : start + len(block)].astype(np.int64)
        direction, gain = shapes(block, centroids, part, codec.normalize)
        buckets = bucketize(direction.numpy(), codec)
        packed[start : start + len(block)] = pack(buckets, codec.nbits)
        gains[start : start + len(block)] = gain.numpy()
    return packed, gains


def decompress(
    codes: np.ndarray,
    packed: np.ndarray,
    gains: np.ndarray,
    centroids: np.ndarray,
    codec: Codec,
) -> np.ndarray:
    """Reconstructed tokens ``(T, D)`` float32: centroid plus gain times weights."""
    centroids = np.asarray(centroids, dtype=np.float32)
    _check_dims(codec.dim, centroids.shape, codec)
    codes = _check_codes(codes, len(packed), len(centroids))
    if np.shape(gains) != (len(packed),):
        raise ValueError(
            f"gains must be ({len(packed)},), got shape {np.shape(gains)}."
        )
    buckets = 1 << codec.nbits
    flat_weights = codec.weights.reshape(-1)
    base = np.arange(codec.dim, dtype=np.intp) * buckets
    out = np.empty((len(packed), codec.dim), dtype=np.float32)
    for start in range(0, len(packed), _BLOCK):
        part = unpack(packed[start : start + _BLOCK], codec.nbits, codec.dim)
        gain = np.asarray(gains[start : start + len(part)], dtype=np.float32)
        block = centroids[codes[start : start + len(part)]]
        block += gain[:, None] * flat_weights[base + part]
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
