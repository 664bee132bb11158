"""Reranking of candidate documents by exact MaxSim."""

from .rank import RerankResult, rerank

__all__ = ["rerank", "RerankResult"]
