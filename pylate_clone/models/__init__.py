"""ColBERT models: the ``ColBERT`` encoder and its ``Dense`` projection."""

from .colbert import ColBERT
from .Dense import Dense

__all__ = ["ColBERT", "Dense"]
