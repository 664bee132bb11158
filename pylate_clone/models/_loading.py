"""Loading a ColBERT: sentence-transformers loader hooks and checkpoint conversion.

sentence-transformers builds a model through a few overridable methods; the
mixin below overrides them so that any checkpoint becomes a Transformer
followed by Dense projections: a PyLate or sentence-transformers checkpoint
keeps its Transformer and Dense layers (Pooling and Normalize are dropped), a
bare Hugging Face encoder gets the Transformer alone. :func:`add_projections`
then completes the stack (a new projection, Stanford-NLP weights, or a final
projection to ``embedding_size``).
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from typing import Any

from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules.dense import Dense as STDense
from sentence_transformers.base.modules.transformer import Transformer
from sentence_transformers.util import load_file_path
from torch import nn

from ._settings import (
    DEFAULT_EMBEDDING_SIZE,
    PYLATE_CONFIG_KEYS,
    STANFORD_DOCUMENT_PREFIX,
    STANFORD_QUERY_PREFIX,
)
from .Dense import Dense

logger = logging.getLogger(__name__)

# artifact.metadata key of a Stanford checkpoint -> ColBERT setting.
STANFORD_METADATA_KEYS = {
    "query_token_id": "query_prefix",
    "doc_token_id": "document_prefix",
    "query_maxlen": "query_length",
    "doc_maxlen": "document_length",
    "attend_to_mask_tokens": "attend_to_expansion_tokens",
}


class LoaderHooks:
    """sentence-transformers loader overrides; mixed into ``ColBERT`` before its base.

    Sets ``self._model_config`` (the checkpoint's
    ``config_sentence_transformers.json``) and ``self._checkpoint_settings``
    (the ColBERT settings found in it).
    """

    model_type = "ColBERT"

    def _get_model_type(
        self, model_name_or_path: str, *args: Any, **kwargs: Any
    ) -> str:
        # Any checkpoint with modules.json is read through the module loader; its
        # Pooling/Normalize layers are filtered out there.
        return self.model_type

    def _load_default_modules(
        self, model_name_or_path: str, **load_kwargs: Any
    ) -> tuple[list[nn.Module], dict[str, Any]]:
        """A bare Hugging Face encoder: the Transformer alone (no pooling).

        ``load_kwargs`` are sentence-transformers' loader arguments (``token``,
        ``cache_folder``, ``revision``, ``trust_remote_code``,
        ``local_files_only``, ``model_kwargs``, ``processor_kwargs``,
        ``config_kwargs``).
        """
        logger.warning(
            "No sentence-transformers model found with name %s; building a ColBERT "
            "from the bare encoder with a new projection.",
            model_name_or_path,
        )
        shared = {
            key: load_kwargs.get(key)
            for key in ("token", "trust_remote_code", "revision", "local_files_only")
        }
        transformer = Transformer(
            model_name_or_path,
            cache_dir=load_kwargs.get("cache_folder"),
            model_kwargs={**shared, **(load_kwargs.get("model_kwargs") or {})},
            processor_kwargs={**shared, **(load_kwargs.get("processor_kwargs") or {})},
            config_kwargs={**shared, **(load_kwargs.get("config_kwargs") or {})},
            backend=self.backend,
        )
        if not load_kwargs.get("local_files_only"):
            self.model_card_data.set_base_model(
                model_name_or_path, revision=load_kwargs.get("revision")
            )
        return [transformer], {}

    def _load_config_modules(
        self, model_name_or_path: str, **load_kwargs: Any
    ) -> tuple[OrderedDict[str, nn.Module], dict[str, Any]]:
        """Load modules.json, keep Transformer and Dense layers, read PyLate settings."""
        modules, _ = super()._load_config_modules(model_name_or_path, **load_kwargs)
        config_path = load_file_path(
            model_name_or_path,
            "config_sentence_transformers.json",
            token=load_kwargs.get("token"),
            cache_folder=load_kwargs.get("cache_folder"),
            revision=load_kwargs.get("revision"),
            local_files_only=load_kwargs.get("local_files_only", False),
        )
        if config_path is not None:
            with open(config_path, encoding="utf8") as f:
                self._model_config = json.load(f)
            self._checkpoint_settings = {
                key: self._model_config[key]
                for key in PYLATE_CONFIG_KEYS
                if key in self._model_config
            }
        kept: OrderedDict[str, nn.Module] = OrderedDict()
        for module in modules.values():
            if isinstance(module, (Transformer, STDense)):
                kept[str(len(kept))] = module
        return kept, {}

    def _load_converted_modules(self, model_name_or_path: str, **kwargs: Any):
        kwargs.pop("model_type", None)
        return self._load_config_modules(model_name_or_path, **kwargs)

    def _parse_model_config(self, model_config: dict[str, Any]) -> None:
        # The saved similarity (e.g. "cosine" of a plain ST model) never applies:
        # a ColBERT always scores with MaxSim, so SentenceTransformer's own parser
        # (which would read it) is skipped.
        super(SentenceTransformer, self)._parse_model_config(model_config)
        if self.truncate_dim is None:
            self.truncate_dim = model_config.get("truncate_dim", None)


def add_projections(
    model: nn.Sequential,
    model_name_or_path: str | None,
    embedding_size: int | None,
    bias: bool,
    hub_kwargs: dict[str, Any],
) -> dict[str, Any]:
    """Complete ``model``'s Dense stack in place; return Stanford settings if any.

    A Transformer alone gets the Stanford-NLP projection of its checkpoint (an
    ``HF_ColBERT`` architecture) or a new ``Dense(hidden, embedding_size or
    128)``; sentence-transformers Dense layers become ours; a last layer whose
    output is not ``embedding_size`` gets one more projection.

    Returns
    -------
    dict
        Settings read from a Stanford checkpoint's ``artifact.metadata``
        (empty for any other checkpoint).
    """
    stanford: dict[str, Any] = {}
    first_param = next(model[0].parameters())
    placed = {"device": first_param.device, "dtype": first_param.dtype}
    if len(model) < 2:
        architectures = getattr(model[0].auto_model.config, "architectures", None)
        if architectures and architectures[0] == "HF_ColBERT":
            projection = Dense.from_stanford_weights(model_name_or_path, **hub_kwargs)
            stanford = read_stanford_metadata(model_name_or_path, hub_kwargs)
        else:
            projection = Dense(
                model[0].get_embedding_dimension(),
                embedding_size or DEFAULT_EMBEDDING_SIZE,
                bias=bias,
            )
        model.append(projection.to(**placed))
    for index in range(1, len(model)):
        module = model[index]
        if isinstance(module, STDense) and not isinstance(module, Dense):
            model._modules[str(index)] = Dense.from_sentence_transformers(module)
        elif not isinstance(module, Dense):
            raise ValueError(
                f"Module {index} of a ColBERT must be a Dense projection, got "
                f"{type(module).__name__}."
            )
    last = model[-1]
    if embedding_size is not None and last.out_features != embedding_size:
        logger.warning(
            "The last layer outputs %d dimensions; adding a Dense(%d -> %d).",
            last.out_features,
            last.out_features,
            embedding_size,
        )
        model.append(Dense(last.out_features, embedding_size, bias=bias).to(**placed))
    return stanford


def read_stanford_metadata(
    model_name_or_path: str, hub_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """ColBERT settings from a Stanford checkpoint's ``artifact.metadata``.

    The prefixes default to Stanford's ``[unused0]``/``[unused1]`` when the
    file is missing or unreadable (a warning says so).
    """
    from transformers.utils import cached_file

    settings = {
        "query_prefix": STANFORD_QUERY_PREFIX,
        "document_prefix": STANFORD_DOCUMENT_PREFIX,
    }
    try:
        if os.path.isdir(model_name_or_path):
            path = os.path.join(model_name_or_path, "artifact.metadata")
            if not os.path.exists(path):
                raise OSError(f"{path} not found")
        else:
            path = cached_file(
                model_name_or_path,
                "artifact.metadata",
                cache_dir=hub_kwargs["cache_folder"],
                revision=hub_kwargs["revision"],
                local_files_only=hub_kwargs["local_files_only"],
                token=hub_kwargs["token"],
            )
        with open(path, encoding="utf8") as f:
            metadata = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        logger.warning("Could not read artifact.metadata (%s); using defaults.", error)
        return settings
    for source, target in STANFORD_METADATA_KEYS.items():
        if metadata.get(source) is not None:
            settings[target] = metadata[source]
    return settings
