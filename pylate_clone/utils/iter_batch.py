"""Batch iteration with an optional progress bar."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import tqdm

from .validation import check_int

T = TypeVar("T")


def iter_batch(
    X: Sequence[T], batch_size: int, tqdm_bar: bool = True, desc: str = ""
) -> Iterator[Sequence[T]]:
    """Yield consecutive slices of ``X`` of length ``batch_size`` (the last may be shorter).

    Parameters
    ----------
    X
        Any sliceable sequence.
    batch_size
        Number of items per batch, at least 1.
    tqdm_bar
        Show a tqdm progress bar counting batches.
    desc
        Label of the progress bar.
    """
    check_int("batch_size", batch_size)
    starts = range(0, len(X), batch_size)
    if tqdm_bar:
        starts = tqdm.tqdm(starts, desc=desc, total=len(starts), position=0)
    for start in starts:
        yield X[start : start + batch_size]
