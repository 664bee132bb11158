"""The record a ranking returns (shared by ``rerank`` and ``score_xtr``)."""

from __future__ import annotations

from typing import TypedDict


class RerankResult(TypedDict):
    """One ranked document: its id as given by the caller and its MaxSim score."""

    id: int | str
    score: float
