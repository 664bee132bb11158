"""Helpers shared across pylate_clone: tensors, batching, collators, distribution."""

from .distributed import all_gather, all_gather_with_gradients, get_rank, get_world_size
from .iter_batch import iter_batch
from .multi_process import start_pool as _start_multi_process_pool
from .processing import KDProcessing
from .tensor import convert_to_tensor

__all__ = [
    "HUGGINGFACE_MODELS",
    "_start_multi_process_pool",
    "iter_batch",
    "convert_to_tensor",
    "ColBERTCollator",
    "KDProcessing",
    "all_gather",
    "all_gather_with_gradients",
    "get_rank",
    "get_world_size",
]


def __getattr__(name: str):
    # ColBERTCollator subclasses a sentence-transformers class: import it on first
    # use so that ``pylate_clone.scores`` (which imports this package) stays light.
    if name == "HUGGINGFACE_MODELS":
        from .huggingface_models import HUGGINGFACE_MODELS

        return HUGGINGFACE_MODELS
    if name == "ColBERTCollator":
        from .collator import ColBERTCollator

        return ColBERTCollator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
