"""Helpers shared across pylate_clone: tensors, batching, collators, distribution."""

from .iter_batch import iter_batch
from .tensor import convert_to_tensor

__all__ = ["iter_batch", "convert_to_tensor"]
