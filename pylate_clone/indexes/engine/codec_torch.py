"""The residual codec of :mod:`.codec` on torch tensors of any device.

The ``device`` path of the index: the same bytes and gains as the numpy
functions (tested on CPU), computed where the tensors live.

Interface contract:

``compress_torch(tokens (T, D), centroids (K, D), codes (T,), codec)
    -> (packed (T, W) uint8, gains (T,) float16)`` on the tokens' device
``decompress_torch(codes, packed, gains, centroids, codec) -> (T, D) float32``
"""

from __future__ import annotations

import torch

from .codec import _BLOCK, Codec, _check_dims, shapes


def compress_torch(
    tokens: torch.Tensor, centroids: torch.Tensor, codes: torch.Tensor, codec: Codec
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`.codec.compress` on tensors, on the tokens' device."""
    device = tokens.device
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be (T, D), got shape {tuple(tokens.shape)}.")
    _check_dims(tokens.shape[1], tuple(centroids.shape), codec)
    cutoffs = torch.from_numpy(codec.cutoffs).to(device)
    per = 8 // codec.nbits
    width = codec.width
    shifts = torch.arange(per, device=device, dtype=torch.int32) * codec.nbits
    packed = torch.empty((len(tokens), width), dtype=torch.uint8, device=device)
    gains = torch.empty(len(tokens), dtype=torch.float16, device=device)
    codes = codes.to(device=device, dtype=torch.long)
    centroids = centroids.to(device=device, dtype=torch.float32)
    for start in range(0, len(tokens), _BLOCK):
        block = tokens[start : start + _BLOCK].float()
        direction, gain = shapes(
            block, centroids, codes[start : start + len(block)], codec.normalize
        )
        # sum(v > cutoffs[d]) per dimension, as the numpy path
        bucket = torch.searchsorted(cutoffs, direction.T.contiguous()).T
        padded = torch.zeros(
            (len(block), width * per), dtype=torch.int32, device=device
        )
        padded[:, : codec.dim] = bucket.to(torch.int32)
        bits = (padded.view(len(block), width, per) << shifts).sum(dim=2)
        packed[start : start + len(block)] = bits.to(torch.uint8)
        gains[start : start + len(block)] = gain.half()
    return packed, gains


def decompress_torch(
    codes: torch.Tensor, packed: torch.Tensor, gains: torch.Tensor,
    centroids: torch.Tensor, codec: Codec,
) -> torch.Tensor:  # fmt: skip
    """:func:`.codec.decompress` on tensors: ``(T, D)`` float32 on the packed device."""
    device = packed.device
    per = 8 // codec.nbits
    if packed.ndim != 2 or packed.shape[1] != codec.width:
        raise ValueError(
            f"packed must be (T, {codec.width}), got shape {tuple(packed.shape)}."
        )
    mask = (1 << codec.nbits) - 1
    shifts = torch.arange(per, device=device, dtype=torch.int32) * codec.nbits
    base = torch.arange(codec.dim, device=device) * (1 << codec.nbits)
    flat_weights = torch.from_numpy(codec.weights).to(device).reshape(-1)
    centroids = centroids.to(device=device, dtype=torch.float32)
    codes = codes.to(device=device, dtype=torch.long)
    buckets = (packed.to(torch.int32)[:, :, None] >> shifts) & mask
    buckets = buckets.reshape(len(packed), -1)[:, : codec.dim].long()
    gain = gains.to(device=device, dtype=torch.float32)[:, None]
    decoded = centroids[codes] + gain * flat_weights[base + buckets]
    if codec.normalize:
        decoded = decoded / decoded.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return decoded
