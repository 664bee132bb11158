"""Writing a ColBERT checkpoint in PyLate's on-disk format.

sentence-transformers 6 writes module types under ``sentence_transformers.base``
and a new ``sentence_bert_config.json`` schema that PyLate 1.6 (on
sentence-transformers 5.3) cannot read. This module writes the legacy layout
instead, which both PyLate and sentence-transformers 6 load.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn

from ._settings import PYLATE_CONFIG_KEYS
from .Dense import PYLATE_DENSE_TYPE, Dense

TRANSFORMER_TYPE = "sentence_transformers.models.Transformer"


def _write_json(path: str, data: Any, indent: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=indent)


def pylate_config(model: Any) -> dict[str, Any]:
    """The content of ``config_sentence_transformers.json``, in PyLate's key order.

    Parameters
    ----------
    model
        A ``ColBERT``: its loaded ``_model_config``, prompts and settings.
    """
    import sentence_transformers
    import transformers

    config = dict(model._model_config)
    config["__version__"] = {
        "sentence_transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
        "pytorch": torch.__version__,
    }
    config["prompts"] = model.prompts
    config["default_prompt_name"] = model.default_prompt_name
    config["similarity_fn_name"] = "MaxSim"
    for key in PYLATE_CONFIG_KEYS:
        config[key] = getattr(model, key)
    return config


def save_pylate_checkpoint(
    model: nn.Sequential, path: str, safe_serialization: bool = True
) -> None:
    """Write ``model`` to ``path`` exactly as PyLate lays a checkpoint out.

    Files: the backbone (weights, ``config.json``, tokenizer with the prefix
    tokens and ``pad_token`` = mask) and ``sentence_bert_config.json`` in the
    root; each projection in ``{i}_Dense/``; ``modules.json`` with PyLate's type
    strings; ``config_sentence_transformers.json`` with the ColBERT settings.
    The model card (``README.md``) is the model's own job
    (:meth:`ColBERT.save <pylate_clone.models.ColBERT.save>`).
    """
    os.makedirs(path, exist_ok=True)
    modules_config = []
    for index, (name, module) in enumerate(model._modules.items()):
        if index == 0:
            module.auto_model.save_pretrained(
                path, safe_serialization=safe_serialization
            )
            module.tokenizer.save_pretrained(path)
            _write_json(
                os.path.join(path, "sentence_bert_config.json"),
                {
                    "max_seq_length": module.max_seq_length,
                    "do_lower_case": bool(getattr(module, "do_lower_case", False)),
                },
                indent=4,
            )
            modules_config.append(
                {"idx": 0, "name": name, "path": "", "type": TRANSFORMER_TYPE}
            )
            continue
        if not isinstance(module, Dense):
            raise TypeError(
                f"Cannot save module {index} of type {type(module).__name__} in PyLate's "
                "format: only Dense projections may follow the Transformer."
            )
        folder = f"{index}_Dense"
        module.save(os.path.join(path, folder), safe_serialization=safe_serialization)
        modules_config.append(
            {"idx": index, "name": name, "path": folder, "type": PYLATE_DENSE_TYPE}
        )
    _write_json(os.path.join(path, "modules.json"), modules_config, indent=2)
    _write_json(
        os.path.join(path, "config_sentence_transformers.json"),
        model._get_model_config(),
        indent=2,
    )
