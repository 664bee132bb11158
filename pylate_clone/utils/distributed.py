"""Distributed helpers: rank, world size and all-gathers (with or without gradients).

Outside an initialised ``torch.distributed`` process group every helper degrades to
the single-process answer (rank 0, world size 1, ``[tensor]``), warning once.

Unlike a bare ``torch.distributed.all_gather``, the gathers accept tensors whose
first dimension differs between ranks (e.g. the last, smaller batch of an epoch):
they are padded to the largest size for the collective and trimmed afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.distributed as dist

from .tensor import pad_dim

logger = logging.getLogger(__name__)

#: PyLate's switch: when True, the first gather outside a process group logs a
#: warning (once per process); set it to False to silence that warning.
not_init_warning = True
_warned = False


def _is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _warn_not_distributed() -> None:
    global _warned
    if not_init_warning and not _warned:
        logger.warning(
            "Gathering across devices was requested, but torch.distributed is not "
            "initialised: using the local tensor only."
        )
        _warned = True


def get_rank() -> int:
    """Rank of this process in the default group, ``0`` when not distributed."""
    return dist.get_rank() if _is_distributed() else 0


def get_world_size() -> int:
    """Number of processes in the default group, ``1`` when not distributed."""
    return dist.get_world_size() if _is_distributed() else 1


def gather_sizes(tensor: torch.Tensor) -> list[int]:
    """First-dimension size of ``tensor`` on every rank (``[len(tensor)]`` locally).

    Parameters
    ----------
    tensor
        Any tensor with at least one dimension.

    Returns
    -------
    list[int]
        ``world_size`` sizes, in rank order.
    """
    if not _is_distributed():
        return [tensor.shape[0]]
    local = torch.tensor([tensor.shape[0]], dtype=torch.long, device=tensor.device)
    sizes = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, local)
    return [int(size.item()) for size in sizes]


def all_gather(tensor: torch.Tensor) -> Sequence[torch.Tensor]:
    """Gather ``tensor`` from every rank; only the local slice keeps its gradient.

    Parameters
    ----------
    tensor
        ``(n_r, ...)`` tensor; ``n_r`` may differ between ranks, the other
        dimensions may not.

    Returns
    -------
    Sequence[torch.Tensor]
        ``world_size`` tensors in rank order; the entry at this rank is ``tensor``
        itself (so gradients flow to it), the others are detached copies.
        ``[tensor]`` when not distributed.
    """
    if not _is_distributed():
        _warn_not_distributed()
        return [tensor]
    sizes = gather_sizes(tensor)
    rows = max(sizes)
    padded = pad_dim(tensor.detach(), rows, dim=0).contiguous()
    gathered = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(gathered, padded)
    gathered = [g[:size] for g, size in zip(gathered, sizes)]
    gathered[dist.get_rank()] = tensor
    return gathered


def all_gather_with_gradients(tensor: torch.Tensor) -> Sequence[torch.Tensor]:
    """Gather ``tensor`` from every rank, keeping every slice differentiable.

    The backward pass sends each rank the sum of the gradients that all ranks
    computed for its slice (``torch.distributed.nn.all_gather``).

    Parameters
    ----------
    tensor
        ``(n_r, ...)`` tensor; ``n_r`` may differ between ranks.

    Returns
    -------
    Sequence[torch.Tensor]
        ``world_size`` tensors in rank order (``[tensor]`` when not distributed).
    """
    if not _is_distributed():
        _warn_not_distributed()
        return [tensor]
    import torch.distributed.nn

    sizes = gather_sizes(tensor)
    padded = pad_dim(tensor, max(sizes), dim=0).contiguous()
    gathered = torch.distributed.nn.all_gather(padded)
    return [g[:size] for g, size in zip(gathered, sizes)]
