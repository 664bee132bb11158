"""Reranking of candidate documents by exact MaxSim, and XTR scoring."""

from .rank import RerankResult, rerank
from .xtr import score_xtr

__all__ = ["rerank", "score_xtr", "RerankResult"]
