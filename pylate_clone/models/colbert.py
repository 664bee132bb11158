"""The ColBERT model: a sentence-transformers model that returns one vector per token."""

from __future__ import annotations

import json
import logging
import os
import string
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules.dense import Dense as STDense
from sentence_transformers.base.modules.transformer import Transformer
from sentence_transformers.util import load_file_path
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from tqdm.autonotebook import trange

from ..hf_hub import PylateModelCardData
from ..scores import SimilarityFunction
from .checkpoint import save_pylate_checkpoint
from .Dense import PYLATE_DENSE_TYPE, Dense
from .pooling import pool_embeddings_hierarchical

logger = logging.getLogger(__name__)

DEFAULT_QUERY_PREFIX = "[Q] "
DEFAULT_DOCUMENT_PREFIX = "[D] "
STANFORD_QUERY_PREFIX = "[unused0]"
STANFORD_DOCUMENT_PREFIX = "[unused1]"
DEFAULT_QUERY_LENGTH = 32
DEFAULT_DOCUMENT_LENGTH = 180
DEFAULT_EMBEDDING_SIZE = 128

# Settings a PyLate checkpoint stores in config_sentence_transformers.json.
PYLATE_CONFIG_KEYS = (
    "query_prefix",
    "document_prefix",
    "query_length",
    "document_length",
    "attend_to_expansion_tokens",
    "skiplist_words",
    "do_query_expansion",
)
OUTPUT_VALUES = ("token_embeddings", None)


def _first(*values: Any) -> Any:
    """The first value that is not None (explicit ``""``, ``0``, ``False``, ``[]`` count)."""
    for value in values:
        if value is not None:
            return value
    return None


class ColBERT(SentenceTransformer):
    """ColBERT late-interaction encoder with PyLate's API.

    Loads a PyLate checkpoint, a sentence-transformers model (its Dense layers are
    kept, Pooling/Normalize dropped), a bare Hugging Face encoder (a ``Dense``
    projection to ``embedding_size`` is added) or a Stanford-NLP ColBERT
    checkpoint, from a local folder or a hub id.

    Parameters
    ----------
    model_name_or_path
        Local folder or hub id.
    modules
        Build the model from these modules instead (a Transformer, optionally
        followed by ``Dense`` layers; with one module a projection is added).
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``None`` picks the best available.
    prompts, default_prompt_name, cache_folder, trust_remote_code, revision, local_files_only, token, use_auth_token, truncate_dim, model_kwargs, config_kwargs
        As in ``SentenceTransformer``.
    similarity_fn_name
        Only ``"MaxSim"`` is supported.
    embedding_size
        Output dimension; a projection is appended when the loaded model's last
        layer does not produce it. Default 128 for models without a projection.
    bias
        Whether added projections have a bias.
    query_prefix, document_prefix
        Strings inserted as one token after ``[CLS]`` (default ``"[Q] "`` and
        ``"[D] "``; ``""`` disables). Explicit value > checkpoint > default.
    truncation
        Accepted for compatibility; inputs are always truncated.
    query_length, document_length
        Token budgets including the prefix (default 32 and 180).
    do_query_expansion
        Pad queries to ``query_length`` with ``[MASK]`` tokens whose embeddings are
        kept (default True).
    attend_to_expansion_tokens
        Let real query tokens attend to the expansion tokens (default False).
    skiplist_words
        Tokens dropped from documents (default ``string.punctuation``).
    tokenizer_kwargs
        Passed to the tokenizer (``processor_kwargs`` in sentence-transformers 6).
    model_card_data
        Model card data object.
    """

    model_card_data_class = PylateModelCardData

    model_type = "ColBERT"
    # PyLate checkpoints name our Dense by PyLate's import path: resolve it here.
    _module_classes = {
        PYLATE_DENSE_TYPE: Dense,
        "pylate_clone.models.Dense.Dense": Dense,
    }

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        modules: Iterable[nn.Module] | None = None,
        device: str | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        similarity_fn_name: str | SimilarityFunction | None = None,
        cache_folder: str | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        local_files_only: bool = False,
        token: bool | str | None = None,
        use_auth_token: bool | str | None = None,
        truncate_dim: int | None = None,
        embedding_size: int | None = None,
        bias: bool = False,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        truncation: bool = True,
        query_length: int | None = None,
        document_length: int | None = None,
        do_query_expansion: bool | None = None,
        attend_to_expansion_tokens: bool | None = None,
        skiplist_words: list[str] | None = None,
        model_kwargs: dict | None = None,
        tokenizer_kwargs: dict | None = None,
        config_kwargs: dict | None = None,
        model_card_data: Any | None = None,
        processor_kwargs: dict | None = None,
    ) -> None:
        if isinstance(model_name_or_path, os.PathLike):
            model_name_or_path = os.fspath(model_name_or_path)
        self._validate_arguments(
            embedding_size=embedding_size,
            query_length=query_length,
            document_length=document_length,
        )
        self._user_settings = {
            "query_prefix": query_prefix,
            "document_prefix": document_prefix,
            "query_length": query_length,
            "document_length": document_length,
            "attend_to_expansion_tokens": attend_to_expansion_tokens,
            "skiplist_words": skiplist_words,
            "do_query_expansion": do_query_expansion,
        }
        # Values read from a checkpoint's config fill in below explicit arguments.
        self._checkpoint_settings: dict[str, Any] = {}
        self._model_config: dict[str, Any] = {"model_type": "ColBERT"}
        if similarity_fn_name is None:
            similarity_fn_name = SimilarityFunction.MAXSIM
        if use_auth_token is not None and token is None:
            token = use_auth_token
        if processor_kwargs is None:
            processor_kwargs = tokenizer_kwargs
        elif tokenizer_kwargs:
            processor_kwargs = {**tokenizer_kwargs, **processor_kwargs}

        super().__init__(
            model_name_or_path,
            modules=list(modules) if modules is not None else None,
            device=device,
            prompts=prompts,
            default_prompt_name=default_prompt_name,
            cache_folder=cache_folder,
            trust_remote_code=trust_remote_code,
            revision=revision,
            local_files_only=local_files_only,
            token=token,
            model_kwargs=model_kwargs,
            processor_kwargs=processor_kwargs,
            config_kwargs=config_kwargs,
            model_card_data=model_card_data,
            similarity_fn_name=similarity_fn_name,
            truncate_dim=truncate_dim,
        )

        stanford_settings = self._add_projections(
            model_name_or_path,
            embedding_size=embedding_size,
            bias=bias,
            hub_kwargs={
                "cache_folder": cache_folder,
                "revision": revision,
                "local_files_only": local_files_only,
                "token": token,
            },
        )
        self._resolve_settings(stanford_settings)
        self._register_prefix_tokens()
        self._override_pad_token()
        self.skiplist = [
            self.tokenizer.convert_tokens_to_ids(word) for word in self.skiplist_words
        ]

    # ------------------------------------------------------------------ construction

    @staticmethod
    def _validate_arguments(**lengths: int | None) -> None:
        for name, value in lengths.items():
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")

    def _get_model_type(
        self,
        model_name_or_path: str,
        token: bool | str | None,
        cache_folder: str | None,
        revision: str | None = None,
        local_files_only: bool = False,
    ) -> str:
        # Any checkpoint with modules.json is read through the module loader; its
        # Pooling/Normalize layers are filtered out there.
        return self.model_type

    def _load_default_modules(
        self,
        model_name_or_path: str,
        token: bool | str | None,
        cache_folder: str | None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        processor_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
    ) -> tuple[list[nn.Module], dict[str, Any]]:
        """A bare Hugging Face encoder: the Transformer alone (no pooling)."""
        logger.warning(
            "No sentence-transformers model found with name %s; building a ColBERT "
            "from the bare encoder with a new projection.",
            model_name_or_path,
        )
        shared = {
            "token": token,
            "trust_remote_code": trust_remote_code,
            "revision": revision,
            "local_files_only": local_files_only,
        }
        transformer = Transformer(
            model_name_or_path,
            cache_dir=cache_folder,
            model_kwargs={**shared, **(model_kwargs or {})},
            processor_kwargs={**shared, **(processor_kwargs or {})},
            config_kwargs={**shared, **(config_kwargs or {})},
            backend=self.backend,
        )
        if not local_files_only:
            self.model_card_data.set_base_model(model_name_or_path, revision=revision)
        return [transformer], {}

    def _load_config_modules(
        self,
        model_name_or_path: str,
        token: bool | str | None,
        cache_folder: str | None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        processor_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
    ) -> tuple[OrderedDict[str, nn.Module], dict[str, Any]]:
        """Load modules.json, keep Transformer and Dense layers, read PyLate settings."""
        modules, module_kwargs = super()._load_config_modules(
            model_name_or_path,
            token=token,
            cache_folder=cache_folder,
            revision=revision,
            trust_remote_code=trust_remote_code,
            local_files_only=local_files_only,
            model_kwargs=model_kwargs,
            processor_kwargs=processor_kwargs,
            config_kwargs=config_kwargs,
        )
        config_path = load_file_path(
            model_name_or_path,
            "config_sentence_transformers.json",
            token=token,
            cache_folder=cache_folder,
            revision=revision,
            local_files_only=local_files_only,
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
        for name, module in modules.items():
            if isinstance(module, (Transformer, STDense)):
                kept[str(len(kept))] = module
        return kept, {}

    def _load_converted_modules(self, model_name_or_path: str, **kwargs: Any):
        kwargs.pop("model_type", None)
        return self._load_config_modules(model_name_or_path, **kwargs)

    def _parse_model_config(self, model_config: dict[str, Any]) -> None:
        # The saved similarity (e.g. "cosine" of a plain ST model) never applies:
        # a ColBERT always scores with MaxSim.
        super(SentenceTransformer, self)._parse_model_config(model_config)
        if self.truncate_dim is None:
            self.truncate_dim = model_config.get("truncate_dim", None)

    def _add_projections(
        self,
        model_name_or_path: str | None,
        embedding_size: int | None,
        bias: bool,
        hub_kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        """Append/convert the Dense layers; return Stanford metadata settings if any."""
        stanford: dict[str, Any] = {}
        hidden_size = self[0].get_embedding_dimension()
        first_param = next(self[0].parameters())
        placed = {"device": first_param.device, "dtype": first_param.dtype}
        if len(self) < 2:
            architectures = getattr(self[0].auto_model.config, "architectures", None)
            if architectures and architectures[0] == "HF_ColBERT":
                self.append(
                    Dense.from_stanford_weights(model_name_or_path, **hub_kwargs).to(
                        **placed
                    )
                )
                stanford = self._read_stanford_metadata(model_name_or_path, hub_kwargs)
            else:
                self.append(
                    Dense(
                        hidden_size,
                        embedding_size or DEFAULT_EMBEDDING_SIZE,
                        bias=bias,
                    ).to(**placed)
                )
        for index in range(1, len(self)):
            module = self[index]
            if isinstance(module, STDense) and not isinstance(module, Dense):
                self._modules[str(index)] = Dense.from_sentence_transformers(module)
            elif not isinstance(module, Dense):
                raise ValueError(
                    f"Module {index} of a ColBERT must be a Dense projection, got "
                    f"{type(module).__name__}."
                )
        last = self[-1]
        if embedding_size is not None and last.out_features != embedding_size:
            logger.warning(
                "The last layer outputs %d dimensions; adding a Dense(%d -> %d).",
                last.out_features,
                last.out_features,
                embedding_size,
            )
            self.append(
                Dense(last.out_features, embedding_size, bias=bias).to(**placed)
            )
        return stanford

    @staticmethod
    def _read_stanford_metadata(
        model_name_or_path: str, hub_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        from transformers.utils import cached_file

        defaults = {
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
            logger.warning(
                "Could not read artifact.metadata (%s); using defaults.", error
            )
            return defaults
        mapping = {
            "query_token_id": "query_prefix",
            "doc_token_id": "document_prefix",
            "query_maxlen": "query_length",
            "doc_maxlen": "document_length",
            "attend_to_mask_tokens": "attend_to_expansion_tokens",
        }
        settings = dict(defaults)
        for source, target in mapping.items():
            if metadata.get(source) is not None:
                settings[target] = metadata[source]
        return settings

    def _resolve_settings(self, stanford: dict[str, Any]) -> None:
        """Apply precedence: explicit argument > checkpoint config > Stanford metadata > default."""
        defaults = {
            "query_prefix": DEFAULT_QUERY_PREFIX,
            "document_prefix": DEFAULT_DOCUMENT_PREFIX,
            "query_length": DEFAULT_QUERY_LENGTH,
            "document_length": DEFAULT_DOCUMENT_LENGTH,
            "attend_to_expansion_tokens": False,
            "skiplist_words": list(string.punctuation),
            "do_query_expansion": True,
        }
        for key in PYLATE_CONFIG_KEYS:
            value = _first(
                self._user_settings[key],
                self._checkpoint_settings.get(key),
                stanford.get(key),
                defaults[key],
            )
            setattr(self, key, list(value) if key == "skiplist_words" else value)
        self._validate_arguments(
            query_length=self.query_length, document_length=self.document_length
        )
        if not self.do_query_expansion:
            self.attend_to_expansion_tokens = False

    def _register_prefix_tokens(self) -> None:
        prefixes = [p for p in (self.query_prefix, self.document_prefix) if p]
        if prefixes:
            auto_model = self[0].auto_model
            try:
                auto_model.resize_token_embeddings(len(self.tokenizer))
                self.tokenizer.add_tokens(prefixes)
                auto_model.resize_token_embeddings(len(self.tokenizer))
            except NotImplementedError:
                logger.warning(
                    "This backbone cannot resize its embeddings; prefix tokens %s were "
                    "not added to the vocabulary.",
                    prefixes,
                )
        self.query_prefix_id = (
            self.tokenizer.convert_tokens_to_ids(self.query_prefix)
            if self.query_prefix
            else None
        )
        self.document_prefix_id = (
            self.tokenizer.convert_tokens_to_ids(self.document_prefix)
            if self.document_prefix
            else None
        )

    def _override_pad_token(self) -> None:
        tokenizer = self.tokenizer
        if tokenizer.mask_token_id is not None:
            tokenizer.pad_token_id = tokenizer.mask_token_id
        elif tokenizer.eos_token_id is not None:
            tokenizer.pad_token_id = tokenizer.eos_token_id
        elif tokenizer.pad_token_id is not None:
            logger.warning(
                "The tokenizer has no mask or eos token: queries are expanded with its pad token."
            )
        else:
            raise NotImplementedError(
                "The tokenizer has no mask, eos or pad token to expand queries with."
            )

    # ------------------------------------------------------------------ similarity

    @property
    def similarity_fn_name(self) -> str:
        """Name of the similarity function: always ``"MaxSim"``."""
        if getattr(self, "_similarity_fn_name", None) is None:
            self.similarity_fn_name = SimilarityFunction.MAXSIM
        return self._similarity_fn_name

    @similarity_fn_name.setter
    def similarity_fn_name(self, value: str | SimilarityFunction | None) -> None:
        if isinstance(value, SimilarityFunction):
            value = value.value
        if value is not None:
            try:
                SimilarityFunction(value)
            except ValueError:
                raise ValueError(
                    f"similarity_fn_name must be one of "
                    f"{SimilarityFunction.possible_values()}, got {value!r}."
                ) from None
            self._similarity = SimilarityFunction.to_similarity_fn(value)
            self._similarity_pairwise = SimilarityFunction.to_similarity_pairwise_fn(
                value
            )
        self._similarity_fn_name = value

    # ------------------------------------------------------------------ tokenization

    @staticmethod
    def insert_prefix_token(input_ids: torch.Tensor, prefix_id: int) -> torch.Tensor:
        """Insert ``prefix_id`` as a new column at position 1: ``(B, L)`` → ``(B, L + 1)``."""
        column = torch.full(
            (input_ids.shape[0], 1),
            prefix_id,
            dtype=input_ids.dtype,
            device=input_ids.device,
        )
        return torch.cat([input_ids[:, :1], column, input_ids[:, 1:]], dim=1)

    @staticmethod
    def skiplist_mask(input_ids: torch.Tensor, skiplist: list[int]) -> torch.Tensor:
        """Boolean mask shaped like ``input_ids``: False where the id is in ``skiplist``."""
        if len(skiplist) == 0:
            return torch.ones_like(input_ids, dtype=torch.bool)
        skip = torch.as_tensor(skiplist, dtype=input_ids.dtype, device=input_ids.device)
        return ~torch.isin(input_ids, skip)

    def tokenize(
        self,
        texts: list[str] | list[dict] | list[tuple[str, str]],
        is_query: bool = True,
        pad: bool = False,
        task: str | None = None,
    ) -> dict[str, torch.Tensor]:
        """Tokenize queries or documents the ColBERT way.

        Parameters
        ----------
        texts
            Strings (or pairs of strings).
        is_query
            Queries use ``query_length`` and the query prefix and, with query
            expansion, are padded to ``query_length`` with ``[MASK]``; documents
            use ``document_length`` and the document prefix.
        pad
            Pad to the full length instead of the longest text in the batch.
        task
            Ignored (accepted for collator compatibility).

        Returns
        -------
        dict[str, torch.Tensor]
            ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the
            tokenizer makes them), each ``(B, L)``.
        """
        max_length = self.query_length if is_query else self.document_length
        prefix_id = self.query_prefix_id if is_query else self.document_prefix_id
        sequence_length = max_length - 1 if prefix_id is not None else max_length
        # Mirrors PyLate: max_seq_length tells the budget of the last call.
        self._first_module().max_seq_length = sequence_length
        padding: bool | str = (
            "max_length" if pad or (is_query and self.do_query_expansion) else True
        )
        columns = self._text_columns(texts)
        features = self.tokenizer(
            *columns,
            padding=padding,
            truncation="longest_first",
            max_length=sequence_length,
            return_tensors="pt",
        )
        features = dict(features)
        if prefix_id is not None:
            features["input_ids"] = self.insert_prefix_token(
                features["input_ids"], prefix_id
            )
            features["attention_mask"] = self.insert_prefix_token(
                features["attention_mask"], 1
            )
            if "token_type_ids" in features:
                features["token_type_ids"] = self.insert_prefix_token(
                    features["token_type_ids"], 0
                )
        if is_query and self.attend_to_expansion_tokens:
            features["attention_mask"].fill_(1)
        return features

    def _text_columns(self, texts: Any) -> list[list[str]]:
        if isinstance(texts, str):
            raise TypeError("tokenize expects a list of texts, not a single string.")
        texts = list(texts)
        if texts and isinstance(texts[0], dict):
            texts = [next(iter(item.values())) for item in texts]
        if texts and isinstance(texts[0], (tuple, list)):
            columns = [list(column) for column in zip(*texts)]
        else:
            columns = [texts]
        lower = getattr(self._first_module(), "do_lower_case", False)
        return [
            [
                str(text).strip().lower() if lower else str(text).strip()
                for text in column
            ]
            for column in columns
        ]

    # ------------------------------------------------------------------ encoding

    def encode(
        self,
        sentences: str | list[str] | list[list[str]],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        precision: Literal["float32", "int8", "uint8", "binary", "ubinary"] = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        padding: bool = False,
        device: str | None = None,
        normalize_embeddings: bool = True,
        is_query: bool = True,
        pool_factor: int = 1,
        protected_tokens: int = 1,
        output_value: str | None = "token_embeddings",
        **kwargs: Any,
    ) -> Any:
        """Encode texts into per-token embeddings.

        Parameters
        ----------
        sentences
            A string, a list of strings, or a list of lists of strings (each
            inner list is encoded separately).
        prompt_name, prompt
            Prompt (by name in ``self.prompts``, or literal) prepended to every text.
        batch_size
            Texts per forward pass.
        show_progress_bar
            Show a tqdm bar; ``None`` shows it when logging is at INFO or below.
        precision
            ``"float32"`` or a quantisation of sentence-transformers (needs
            equal shapes: expanded queries or ``padding=True``).
        convert_to_numpy, convert_to_tensor
            Output numpy arrays (default) or torch tensors.
        padding
            Zero-pad every output to the longest: each item becomes ``(1, L_max, H)``.
        device
            Device to encode on (the model is moved there).
        normalize_embeddings
            L2-normalise every token vector.
        is_query
            Encode as queries (prefix, expansion; all ``query_length`` vectors kept)
            or as documents (prefix, skiplist and padding removed).
        pool_factor
            Documents only: hierarchical pooling keeps about ``1/pool_factor`` of
            the tokens. Must be >= 1.
        protected_tokens
            Leading tokens kept out of pooling.
        output_value
            ``"token_embeddings"`` (default) or ``None`` for a dict of per-text lists
            ``token_embeddings`` (all positions), ``input_ids``, ``attention_mask``
            and ``masks`` (the tokens the default output keeps).
        **kwargs
            Anything else raises a ``TypeError`` naming it.

        Returns
        -------
        numpy.ndarray | torch.Tensor | list
            One ``(n_tokens, H)`` matrix for a string; a list of them for a list;
            a list of such lists (stacked ``(n, L, H)`` tensors when
            ``convert_to_tensor=True``) for a list of lists.
        """
        if kwargs:
            unknown = ", ".join(sorted(kwargs))
            raise TypeError(f"encode() got unexpected keyword argument(s): {unknown}.")
        if output_value not in OUTPUT_VALUES:
            raise ValueError(
                f"output_value must be 'token_embeddings' or None, got {output_value!r}."
            )
        if not isinstance(pool_factor, int) or pool_factor < 1:
            raise ValueError(
                f"pool_factor must be an integer >= 1, got {pool_factor!r}."
            )
        if output_value is None and pool_factor > 1:
            raise ValueError(
                "output_value=None cannot be combined with pool_factor > 1."
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"batch_size must be a positive integer, got {batch_size!r}."
            )

        if isinstance(sentences, list) and sentences and isinstance(sentences[0], list):
            groups = []
            for group in sentences:
                result = self.encode(
                    group,
                    prompt_name=prompt_name,
                    prompt=prompt,
                    batch_size=batch_size,
                    show_progress_bar=show_progress_bar,
                    precision=precision,
                    convert_to_numpy=convert_to_numpy,
                    convert_to_tensor=convert_to_tensor,
                    padding=padding,
                    device=device,
                    normalize_embeddings=normalize_embeddings,
                    is_query=is_query,
                    pool_factor=pool_factor,
                    protected_tokens=protected_tokens,
                    output_value=output_value,
                )
                if convert_to_tensor and output_value is not None:
                    result = torch.stack(result) if len(result) else torch.empty(0)
                groups.append(result)
            return groups

        self.eval()
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() in (
                logging.INFO,
                logging.DEBUG,
            )
        if not convert_to_numpy:
            convert_to_tensor = True
        convert_to_numpy = not convert_to_tensor

        input_was_string = isinstance(sentences, str) or not hasattr(
            sentences, "__len__"
        )
        if input_was_string:
            sentences = [sentences]
        sentences = list(sentences)
        for i, sentence in enumerate(sentences):
            if not isinstance(sentence, str):
                raise TypeError(
                    f"sentences[{i}] must be a string, got {type(sentence).__name__}."
                )

        prompt = self._resolve_prompt(prompt, prompt_name)
        if prompt:
            sentences = [prompt + sentence for sentence in sentences]

        if device is not None:
            self.to(device)
        target_device = self.device

        order = np.argsort([-len(sentence) for sentence in sentences], kind="stable")
        sorted_sentences = [sentences[i] for i in order]
        label = "queries" if is_query else "documents"
        embeddings: list[torch.Tensor] = []
        extras: dict[str, list[torch.Tensor]] = {
            "input_ids": [],
            "attention_mask": [],
            "masks": [],
        }
        for start in trange(
            0,
            len(sorted_sentences),
            batch_size,
            desc=f"Encoding {label} (bs={batch_size})",
            disable=not show_progress_bar,
        ):
            batch = sorted_sentences[start : start + batch_size]
            features = self.tokenize(batch, is_query=is_query)
            features = {key: value.to(target_device) for key, value in features.items()}
            with torch.no_grad():
                token_embeddings = self.forward(features)["token_embeddings"]
                if is_query and self.do_query_expansion:
                    masks = torch.ones_like(features["input_ids"], dtype=torch.bool)
                elif is_query:
                    masks = features["attention_mask"].bool()
                else:
                    masks = self.skiplist_mask(features["input_ids"], self.skiplist)
                    masks &= features["attention_mask"].bool()
                if normalize_embeddings:
                    token_embeddings = torch.nn.functional.normalize(
                        token_embeddings, p=2, dim=-1
                    )
                if convert_to_numpy:
                    token_embeddings = token_embeddings.cpu()
                    masks = masks.cpu()
                if output_value is None:
                    embeddings.extend(token_embeddings)
                    extras["input_ids"].extend(features["input_ids"].cpu())
                    extras["attention_mask"].extend(features["attention_mask"].cpu())
                    extras["masks"].extend(masks.cpu())
                    continue
                # One boolean gather for the batch, then views per text: per-row
                # indexing costs one small parallel op per text.
                counts = masks.sum(dim=1).tolist()
                rows = list(token_embeddings[masks].split(counts))
            if pool_factor > 1 and not is_query:
                rows = self.pool_embeddings_hierarchical(
                    rows, pool_factor=pool_factor, protected_tokens=protected_tokens
                )
            embeddings.extend(rows)

        inverse = np.argsort(order, kind="stable")
        if output_value is None:
            result = {
                "token_embeddings": embeddings,
                "input_ids": extras["input_ids"],
                "attention_mask": extras["attention_mask"],
                "masks": extras["masks"],
            }
            pad_values = {
                "token_embeddings": 0.0,
                "input_ids": self.tokenizer.pad_token_id,
                "attention_mask": 0,
                "masks": False,
            }
            output: dict[str, Any] = {}
            for key, values in result.items():
                if padding:
                    values = self._pad(values, pad_values[key])
                values = [values[i] for i in inverse]
                output[key] = self._convert_output(values, convert_to_numpy)
            if input_was_string:
                return {key: value[0] for key, value in output.items()}
            return output

        if padding:
            embeddings = self._pad(embeddings, 0.0)
        embeddings = [embeddings[i] for i in inverse]
        if precision != "float32":
            from sentence_transformers.util.quantization import quantize_embeddings

            quantized = quantize_embeddings(
                torch.stack([e.float().cpu() for e in embeddings]), precision=precision
            )
            embeddings = [torch.from_numpy(row) for row in quantized]
        output = self._convert_output(embeddings, convert_to_numpy)
        return output[0] if input_was_string else output

    @staticmethod
    def _pad(
        values: list[torch.Tensor], padding_value: float | int | bool
    ) -> list[torch.Tensor]:
        if not values:
            return values
        padded = pad_sequence(values, batch_first=True, padding_value=padding_value)
        return list(padded.split(1, dim=0))

    @staticmethod
    def _convert_output(
        values: list[torch.Tensor], convert_to_numpy: bool
    ) -> list[Any]:
        if not convert_to_numpy:
            return values
        converted = []
        for value in values:
            if value.dtype == torch.bfloat16:
                value = value.float()
            converted.append(value.cpu().numpy())
        return converted

    def pool_embeddings_hierarchical(
        self,
        documents_embeddings: list[torch.Tensor],
        pool_factor: int = 1,
        protected_tokens: int = 1,
    ) -> list[torch.Tensor]:
        """Reduce each document's tokens by hierarchical clustering.

        See :func:`pylate_clone.models.pooling.pool_embeddings_hierarchical`.
        """
        return pool_embeddings_hierarchical(
            documents_embeddings,
            pool_factor=pool_factor,
            protected_tokens=protected_tokens,
        )

    # ------------------------------------------------------------------ multi-process

    def start_multi_process_pool(
        self, target_devices: list[str] | None = None
    ) -> dict[str, Any]:
        """Start one encoding worker process per device (default: every GPU, else 4 CPU workers).

        Returns
        -------
        dict
            ``{"input": Queue, "output": Queue, "processes": [...]}`` for
            :meth:`encode_multi_process` and :meth:`stop_multi_process_pool`.
        """
        from ..utils.multi_process import start_pool

        return start_pool(self, target_devices)

    def encode_multi_process(
        self,
        sentences: list[str],
        pool: dict[str, Any],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        chunk_size: int | None = None,
        precision: str = "float32",
        normalize_embeddings: bool = True,
        padding: bool = False,
        is_query: bool = True,
        pool_factor: int = 1,
        protected_tokens: int = 1,
    ) -> list[np.ndarray]:
        """Encode ``sentences`` with the worker processes of ``pool``.

        Returns
        -------
        list[numpy.ndarray]
            One ``(n_tokens, H)`` array per sentence, in input order.
        """
        from ..utils.multi_process import encode_with_pool

        return encode_with_pool(
            pool,
            sentences,
            chunk_size=chunk_size,
            encode_kwargs={
                "prompt_name": prompt_name,
                "prompt": prompt,
                "batch_size": batch_size,
                "precision": precision,
                "normalize_embeddings": normalize_embeddings,
                "padding": padding,
                "is_query": is_query,
                "pool_factor": pool_factor,
                "protected_tokens": protected_tokens,
            },
        )

    @staticmethod
    def stop_multi_process_pool(pool: dict[str, Any]) -> None:
        """Terminate the workers of ``pool`` and close its queues."""
        from ..utils.multi_process import stop_pool

        stop_pool(pool)

    # ------------------------------------------------------------------ saving

    def save(
        self,
        path: str,
        model_name: str | None = None,
        create_model_card: bool = True,
        train_datasets: list[str] | None = None,
        safe_serialization: bool = True,
        **kwargs: Any,
    ) -> None:
        """Save in PyLate's on-disk format (loadable by PyLate and sentence-transformers).

        Parameters
        ----------
        path
            Output folder (created if needed).
        model_name
            Name used in the model card.
        create_model_card
            Write a ``README.md``.
        train_datasets
            Dataset names for the model card.
        safe_serialization
            Write safetensors (default) instead of pickled ``pytorch_model.bin``.
        **kwargs
            Ignored; accepted for sentence-transformers callers.
        """
        if path is None:
            return
        save_pylate_checkpoint(
            self,
            path,
            model_name=model_name,
            create_model_card=create_model_card,
            train_datasets=train_datasets,
            safe_serialization=safe_serialization,
        )

    def save_pretrained(self, path: str, *args: Any, **kwargs: Any) -> None:
        """Alias of :meth:`save`."""
        self.save(path, *args, **kwargs)

    def _get_model_config(self) -> dict[str, Any]:
        """The content of ``config_sentence_transformers.json``, in PyLate's key order."""
        import sentence_transformers
        import transformers

        config = dict(self._model_config)
        config["__version__"] = {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "pytorch": torch.__version__,
        }
        config["prompts"] = self.prompts
        config["default_prompt_name"] = self.default_prompt_name
        config["similarity_fn_name"] = "MaxSim"
        for key in PYLATE_CONFIG_KEYS:
            config[key] = getattr(self, key)
        return config

    def get_sentence_embedding_dimension(self) -> int | None:
        """Dimension of each token vector (the last projection's ``out_features``)."""
        return self.get_embedding_dimension()

    @staticmethod
    def load(input_path: str) -> ColBERT:
        """Load a ColBERT from ``input_path``."""
        return ColBERT(model_name_or_path=input_path)

    def __len__(self) -> int:
        return len(self._modules)
