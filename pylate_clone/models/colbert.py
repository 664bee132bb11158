"""The ColBERT model: a sentence-transformers model that returns one vector per token.

This module holds the ``ColBERT`` class and its public methods; the work is done
by the modules named after each job: ``_settings`` (defaults and precedence),
``_loading`` (sentence-transformers loader hooks, checkpoint conversion),
``_tokenize`` (tokenizer changes, tokenization), ``_encode`` and
``_encode_output`` (the encode loop and output shaping), ``_multi_process``
(worker processes) and ``checkpoint`` (saving in PyLate's format).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any, Literal

import torch
from sentence_transformers import SentenceTransformer
from torch import nn

from ..hf_hub import PylateModelCardData
from ..scores import SimilarityFunction
from ..utils.tensor import skiplist_mask
from . import _tokenize
from ._encode import encode_groups, encode_options, encode_texts
from ._loading import LoaderHooks, add_projections
from ._multi_process import MultiProcessEncoding
from ._settings import (  # noqa: F401  (re-exported: PyLate's import paths)
    DEFAULT_DOCUMENT_LENGTH,
    DEFAULT_DOCUMENT_PREFIX,
    DEFAULT_EMBEDDING_SIZE,
    DEFAULT_QUERY_LENGTH,
    DEFAULT_QUERY_PREFIX,
    PYLATE_CONFIG_KEYS,
    STANFORD_DOCUMENT_PREFIX,
    STANFORD_QUERY_PREFIX,
    check_lengths,
    resolve_settings,
)
from .checkpoint import pylate_config, save_pylate_checkpoint
from .Dense import PYLATE_DENSE_TYPE, Dense
from .pooling import pool_embeddings_hierarchical

logger = logging.getLogger(__name__)


class ColBERT(LoaderHooks, MultiProcessEncoding, SentenceTransformer):
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
        check_lengths(
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

        stanford_settings = add_projections(
            self,
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
        settings = resolve_settings(
            self._user_settings, self._checkpoint_settings, stanford_settings
        )
        for key, value in settings.items():
            setattr(self, key, value)
        _tokenize.register_prefix_tokens(self)
        _tokenize.override_pad_token(self.tokenizer)
        self.skiplist = [
            self.tokenizer.convert_tokens_to_ids(word) for word in self.skiplist_words
        ]

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
        return _tokenize.insert_prefix_token(input_ids, prefix_id)

    @staticmethod
    def skiplist_mask(input_ids: torch.Tensor, skiplist: list[int]) -> torch.Tensor:
        """Boolean mask shaped like ``input_ids``: False where the id is in ``skiplist``."""
        return skiplist_mask(input_ids, skiplist)

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
        return _tokenize.tokenize(self, texts, is_query=is_query, pad=pad)

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

        Returns
        -------
        numpy.ndarray | torch.Tensor | list
            One ``(n_tokens, H)`` matrix for a string; a list of them for a list;
            a list of such lists (stacked ``(n, L, H)`` tensors when
            ``convert_to_tensor=True``) for a list of lists.
        """
        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() in (
                logging.INFO,
                logging.DEBUG,
            )
        options = encode_options(
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
        if isinstance(sentences, list) and sentences and isinstance(sentences[0], list):
            prompt = self._resolve_prompt(prompt, prompt_name)
            return encode_groups(self, sentences, prompt, options)
        return encode_texts(
            self, sentences, self._resolve_prompt(prompt, prompt_name), options
        )

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

    # ------------------------------------------------------------------ saving

    def save(
        self,
        path: str,
        model_name: str | None = None,
        create_model_card: bool = True,
        train_datasets: list[str] | None = None,
        safe_serialization: bool = True,
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
        """
        if path is None:
            return
        save_pylate_checkpoint(self, path, safe_serialization=safe_serialization)
        if create_model_card:
            # hf_hub.PylateModelCardData renders PyLate's card (or keeps a loaded one).
            self._create_model_card(path, model_name, train_datasets)

    # sentence-transformers' trainer saves through save_pretrained: the same
    # method, so both have save's parameters and refuse unknown keywords.
    save_pretrained = save

    def _get_model_config(self) -> dict[str, Any]:
        """The content of ``config_sentence_transformers.json``, in PyLate's key order."""
        return pylate_config(self)

    def get_sentence_embedding_dimension(self) -> int | None:
        """Dimension of each token vector (the last projection's ``out_features``)."""
        return self.get_embedding_dimension()

    @staticmethod
    def load(input_path: str) -> ColBERT:
        """Load a ColBERT from ``input_path``."""
        return ColBERT(model_name_or_path=input_path)

    def __len__(self) -> int:
        return len(self._modules)
