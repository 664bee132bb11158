"""Retrievers: turn an index's hits into ranked documents."""

from .base import BaseRetriever
from .colbert import ColBERT
from .xtr import XTR

__all__ = ["BaseRetriever", "ColBERT", "XTR"]
