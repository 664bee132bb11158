"""Joining a Ray cluster (Ray is the optional ``ray`` extra)."""

from __future__ import annotations

from typing import Any


def import_ray() -> Any:
    """The ``ray`` module, or an ``ImportError`` saying which extra provides it."""
    try:
        import ray
    except ImportError:
        raise ImportError(
            "pylate_clone.distributed needs Ray: pip install 'pylate-clone[ray]'"
        ) from None
    return ray


def connect(ray_address: str | None) -> Any:
    """Connect this process to Ray and return the ``ray`` module.

    Parameters
    ----------
    ray_address
        None starts a local Ray (or joins the one ``RAY_ADDRESS`` names);
        ``"auto"`` joins the cluster running on this machine; ``"host:port"``
        or ``"ray://host:port"`` joins that cluster. A process already
        connected keeps its connection.

    Returns
    -------
    module
        ``ray``, initialised.
    """
    if ray_address is not None and (
        not isinstance(ray_address, str) or not ray_address.strip()
    ):
        raise ValueError(
            "ray_address must be None, 'auto' or a cluster address such as "
            f"'ray://host:10001', got {ray_address!r}."
        )
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(
            address=ray_address,
            ignore_reinit_error=True,
            log_to_driver=False,
            include_dashboard=False if ray_address is None else None,
        )
    return ray


def cluster_gpus(ray: Any) -> int:
    """Number of GPUs the connected cluster offers (0 on CPU-only clusters)."""
    return int(ray.cluster_resources().get("GPU", 0))


def cluster_cpus(ray: Any) -> int:
    """Number of CPUs the connected cluster offers (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
