"""Validation of PyLate's PLAID constructor parameters (shared by PLAID and FastPlaid)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from ..utils import check_int

STANFORD_ONLY = (
    "embedding_size",
    "nranks",
    "index_bsize",
    "ndocs",
    "centroid_score_threshold",
    "ncells",
    "search_batch_size",
)
NBITS = (1, 2, 4, 8)
# PyLate's PLAID settings that PLAID and FastPlaid both take (and validate here).
PARAMETERS = (
    "nbits",
    "kmeans_niters",
    "max_points_per_centroid",
    "n_samples_kmeans",
    "seed",
    "use_triton",
    "n_ivf_probe",
    "n_full_scores",
    "batch_size",
    "num_threads",
    "show_progress",
    "device",
    "low_memory",
)


def plaid_settings(
    owner: str, kwargs: dict[str, Any], arguments: Mapping[str, Any]
) -> dict[str, Any]:
    """Validated PLAID settings, before any native code runs.

    Parameters
    ----------
    owner
        Class name used in messages.
    kwargs
        Extra keyword arguments: Stanford-only ones warn (``FutureWarning``),
        unknown ones raise ``TypeError``.
    arguments
        The constructor's arguments (its ``locals()``); the names in
        :data:`PARAMETERS` are read, the others ignored.

    Returns
    -------
    dict
        The :data:`PARAMETERS` with normalised values.
    """
    values = {name: arguments[name] for name in PARAMETERS}
    ignored = sorted(set(kwargs) & set(STANFORD_ONLY))
    unknown = sorted(set(kwargs) - set(STANFORD_ONLY))
    if unknown:
        raise TypeError(f"{owner} got unexpected keyword arguments: {unknown}.")
    if ignored:
        warnings.warn(
            f"{ignored} only applied to the Stanford PLAID backend and are ignored.",
            FutureWarning,
            stacklevel=3,
        )
    nbits = values["nbits"]
    if nbits not in NBITS or isinstance(nbits, bool):
        raise ValueError(f"nbits must be one of {NBITS}, got {nbits!r}.")
    use_triton = values["use_triton"]
    if use_triton not in (None, True, False):
        raise ValueError(f"use_triton must be None, True or False, got {use_triton!r}.")
    device = values["device"]
    if device is not None and not (
        isinstance(device, str)
        or (
            isinstance(device, list)
            and device
            and all(isinstance(d, str) for d in device)
        )
    ):
        raise ValueError(
            f"device must be None, a str or a list of str, got {device!r}."
        )
    optional = ("n_samples_kmeans", "n_ivf_probe", "n_full_scores", "batch_size")
    return {
        "nbits": int(nbits),
        "kmeans_niters": check_int("kmeans_niters", values["kmeans_niters"]),
        "max_points_per_centroid": check_int(
            "max_points_per_centroid", values["max_points_per_centroid"]
        ),
        **{name: check_int(name, values[name], allow_none=True) for name in optional},
        "seed": check_int("seed", values["seed"], minimum=0),
        "use_triton": use_triton,
        "num_threads": check_int("num_threads", values["num_threads"], allow_none=True),
        "show_progress": bool(values["show_progress"]),
        "device": device,
        "low_memory": bool(values["low_memory"]),
    }
