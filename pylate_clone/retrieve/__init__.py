"""Retrievers: turn an index's hits into ranked documents."""

from .base import BaseRetriever
from .colbert import ColBERT

__all__ = ["BaseRetriever", "ColBERT"]
