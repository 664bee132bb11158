"""Model names that resolve without the ``sentence-transformers/`` organisation prefix."""

from sentence_transformers.util import ORIGINAL_TRANSFORMER_MODELS

HUGGINGFACE_MODELS: list[str] = list(ORIGINAL_TRANSFORMER_MODELS)
