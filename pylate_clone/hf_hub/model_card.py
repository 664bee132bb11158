"""Model card data for ColBERT models, rendered in PyLate's card layout."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from platform import python_version
from typing import Any, Literal

from sentence_transformers import SentenceTransformerModelCardData
from sentence_transformers import (  # noqa: F401 - PyLate's module-level name
    __version__ as sentence_transformers_version,
)

from ..__version__ import __version__
from .citations import PYLATE, SENTENCE_TRANSFORMERS

logger = logging.getLogger(__name__)

# PyLate's module-level names for the versions a card lists.
pylate_version = __version__

TEMPLATE = Path(__file__).parent / "model_card_template.md"
# Card-data fields that are live objects or raw metrics, not card metadata:
# ``to_dict`` drops them (they cannot be written to the card's YAML).
IGNORED_FIELDS = ["model", "trainer", "eval_results_dict"]
DEFAULT_TAGS = (
    "ColBERT",
    "PyLate",
    "sentence-transformers",
    "sentence-similarity",
    "feature-extraction",
)


def get_versions() -> dict[str, Any]:
    """Versions of the libraries a card lists under "Framework Versions".

    Returns
    -------
    dict[str, str]
        ``python``, ``sentence_transformers``, ``transformers``, ``torch``,
        ``pylate`` (this package's version), ``accelerate`` and ``datasets``
        when installed, and ``tokenizers``.
    """
    import sentence_transformers
    import tokenizers
    import torch
    import transformers

    versions = {
        "python": python_version(),
        "sentence_transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "pylate": __version__,
    }
    for name in ("accelerate", "datasets"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    versions["tokenizers"] = tokenizers.__version__
    return versions


def _join_names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass
class PylateModelCardData(SentenceTransformerModelCardData):
    """What a ColBERT model's ``README.md`` says, in PyLate's layout.

    A sentence-transformers card-data object whose card carries
    ``library_name: PyLate`` (the hub's PyLate filter), the ColBERT tags, the
    document/query lengths, the token-vector dimension, MaxSim, and usage
    snippets for indexing, retrieval and reranking that name ``model_id`` (or
    the base model). For a model trained with ``SentenceTransformerTrainer`` it
    also lists the datasets, losses, hyper-parameters, training logs,
    evaluator metrics, framework versions and citations.

    Parameters
    ----------
    language
        Language code(s), e.g. ``"en"`` or ``["en", "fr"]``.
    license
        License id, e.g. ``"apache-2.0"``.
    model_name
        Title of the card (default: "PyLate model based on <base model>").
    model_id
        Hub repository id the usage snippets load, e.g. ``"me/my-colbert"``.
    train_datasets, eval_datasets
        ``[{"name": ..., "id": ...}]`` descriptions of the datasets.
    task_name
        What the model is for.
    tags
        Hub tags (the ColBERT/PyLate ones by default).
    local_files_only
        Do not query the hub while filling in the card.
    generate_widget_examples
        Kept for PyLate compatibility; ignored.
    """

    language: str | list[str] | None = field(default_factory=list)
    license: str | None = None
    model_name: str | None = None
    model_id: str | None = None
    train_datasets: list[dict[str, str]] = field(default_factory=list)
    eval_datasets: list[dict[str, str]] = field(default_factory=list)
    task_name: str = (
        "semantic textual similarity, semantic search, paraphrase mining, "
        "text classification, clustering, and more"
    )
    tags: list[str] | None = field(default_factory=lambda: list(DEFAULT_TAGS))
    local_files_only: bool = False
    generate_widget_examples: Literal["deprecated"] | bool = "deprecated"

    # Set by sentence-transformers while training (PyLate declares them too).
    predict_example: str | None = field(default=None, init=False)
    trainer: Any = field(default=None, init=False, repr=False)
    pipeline_tag: str = field(default="sentence-similarity", init=False)
    library_name: str = field(default="PyLate", init=False)
    version: dict[str, str] = field(default_factory=get_versions, init=False)
    template_path: Path = field(default=TEMPLATE, init=False, repr=False)

    def set_losses(self, losses: list[Any]) -> None:
        """Record the training losses: their citations and ``loss:<Name>`` tags."""
        cited: dict[str, list[str]] = {
            SENTENCE_TRANSFORMERS: ["Sentence Transformers"],
            PYLATE: ["PyLate"],
        }
        for loss in losses:
            citation = getattr(loss, "citation", None)
            if citation:
                cited.setdefault(citation, []).append(type(loss).__name__)
        self.citations = {_join_names(names): text for text, names in cited.items()}
        self.add_tags(
            [f"loss:{name}" for name in dict.fromkeys(type(x).__name__ for x in losses)]
        )

    def set_widget_examples(self, dataset: Any) -> None:
        """No widget examples: the hub widget cannot run a ColBERT model."""

    def run_usage_snippet(self) -> None:
        """The card's usage snippets are static text; nothing is computed."""

    def get_default_model_name(self) -> str:
        if self.base_model:
            return f"PyLate model based on {self.base_model}"
        return "PyLate"

    def get_model_specific_metadata(self) -> dict[str, Any]:
        model = self.model
        if model is None:
            return {}
        return {
            "model_string": str(model),
            "document_length": getattr(model, "document_length", None),
            "query_length": getattr(model, "query_length", None),
            "output_dimensionality": model.get_sentence_embedding_dimension(),
            "similarity_fn_name": "MaxSim",
            "snippet_model": self.model_id or self.base_model or "path/to/your/model",
        }

    def to_dict(self) -> dict[str, Any]:
        # Citations come from set_losses (training), as in PyLate's cards.
        data = super().to_dict()
        data.pop("usage_snippet", None)
        for key in IGNORED_FIELDS:
            data.pop(key, None)
        return data
