"""The similarity-function enum that ``ColBERT.similarity_fn_name`` accepts."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from .colbert import colbert_scores, colbert_scores_pairwise


class SimilarityFunction(Enum):
    """Similarity functions a ColBERT model can use (only MaxSim)."""

    MAXSIM = "MaxSim"

    @staticmethod
    def to_similarity_fn(
        similarity_function: str | SimilarityFunction,
    ) -> Callable:
        """Return the all-pairs scorer for ``similarity_function`` (``(A, B)`` scores)."""
        return _SCORERS[SimilarityFunction(similarity_function)][0]

    @staticmethod
    def to_similarity_pairwise_fn(
        similarity_function: str | SimilarityFunction,
    ) -> Callable:
        """Return the pairwise scorer for ``similarity_function`` (``(n,)`` scores)."""
        return _SCORERS[SimilarityFunction(similarity_function)][1]

    @staticmethod
    def possible_values() -> list[str]:
        """Names accepted by the constructor."""
        return [member.value for member in SimilarityFunction]


# (all-pairs, pairwise) scorer of each member; an unknown name already fails
# in SimilarityFunction(...) with a ValueError listing nothing unexpected.
_SCORERS: dict[SimilarityFunction, tuple[Callable, Callable]] = {
    SimilarityFunction.MAXSIM: (colbert_scores, colbert_scores_pairwise),
}
