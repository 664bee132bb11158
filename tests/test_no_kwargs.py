"""No public method swallows unknown keyword arguments.

A misspelt keyword (``show_progess=False``, ``batchsize=8``) or one PyLate's
signature does not have (``metadata=[...]``) must be a ``TypeError`` naming it,
not silently ignored. The walk below lists every public class's methods (and
every public function) of ``pylate_clone``; a ``**kwargs`` is allowed only
where listed in :data:`JUSTIFIED`, with the reason.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import pylate_clone
from pylate_clone import indexes, models

# "module:qualified name" -> why this one takes **kwargs.
JUSTIFIED = {
    # PyLate's constructors take **kwargs for the Stanford backend's settings:
    # those are accepted with a FutureWarning, any other name is a TypeError
    # (checked below).
    "pylate_clone.indexes.plaid:PLAID.__init__": "Stanford-only settings warn",
    "pylate_clone.indexes.fast_plaid:FastPlaid.__init__": "Stanford-only settings warn",
    # Receives PLAID's whole argument set and keeps the Stanford ones (its job).
    "pylate_clone.indexes.stanford_plaid:stanford_plaid_from_plaid_args": "filter",
    # Forwarders: the callee has an explicit signature and refuses unknown names.
    "pylate_clone.evaluation.nano_beir_evaluator:NanoBEIREvaluator.__init__": (
        "forwards to sentence-transformers' NanoBEIREvaluator"
    ),
    "pylate_clone.scores.xtr:XTRScores.compile": "forwards to torch.compile (PyLate)",
    "pylate_clone.server.server:wrap_encode_function": "forwards to model.encode",
    # sentence-transformers' Module.save contract (it passes safe_serialization).
    "pylate_clone.models.Dense:Dense.save": "sentence-transformers' Module.save",
    # A typing.Protocol describing model.encode, not an implementation.
    "pylate_clone.utils.multi_process:Encoder.encode": "Protocol of model.encode",
    # The keywords are the data: knob names differ per index kind; an unknown
    # knob is a TypeError from the index's search hook.
    "pylate_clone.indexes.tuning:grid": "knob names are the data",
    # SCALE_OUT.md: the index class's own keywords, checked by that class.
    "pylate_clone.distributed.build:build_index": "index_kwargs go to the index class",
    "pylate_clone.indexes.tuning:recall_against_exact": "knob names per index",
}


def _public_modules() -> list:
    modules = [pylate_clone]
    for info in pkgutil.walk_packages(pylate_clone.__path__, "pylate_clone."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def _takes_var_keyword(function) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.VAR_KEYWORD for p in parameters)


def _callables_with_var_keyword() -> set[str]:
    """``module:qualname`` of our public functions and methods taking ``**kwargs``."""
    found = set()
    for module in _public_modules():
        for name, obj in vars(module).items():
            if name.startswith("_"):
                continue
            if inspect.isfunction(obj) and obj.__module__ == module.__name__:
                if _takes_var_keyword(obj):
                    found.add(f"{obj.__module__}:{obj.__qualname__}")
            if not (inspect.isclass(obj) and obj.__module__.startswith("pylate_clone")):
                continue
            # dir() includes inherited methods: a public class must not inherit
            # a **kwargs method from one of our private bases either.
            for attribute in dir(obj):
                if attribute.startswith("_") and attribute not in (
                    "__init__",
                    "__call__",
                ):
                    continue
                member = inspect.getattr_static(obj, attribute)
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if not inspect.isfunction(member):
                    continue
                if not member.__module__.startswith("pylate_clone"):
                    continue  # torch / sentence-transformers methods
                if _takes_var_keyword(member):
                    found.add(f"{member.__module__}:{member.__qualname__}")
    return found


def test_no_public_method_swallows_keyword_arguments() -> None:
    found = _callables_with_var_keyword()
    unexpected = sorted(found - set(JUSTIFIED))
    assert not unexpected, f"**kwargs on public callables: {unexpected}"
    # The list stays accurate: every justified entry still exists.
    assert not set(JUSTIFIED) - found, sorted(set(JUSTIFIED) - found)


def _docs(n: int = 6, dim: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((3 + i % 3, dim)).astype(np.float32) for i in range(n)]


@pytest.mark.parametrize(
    "make",
    [
        lambda folder: indexes.PLAID(index_folder=folder, override=True),
        lambda folder: indexes.Voyager(
            index_folder=folder, override=True, embedding_size=8
        ),
        lambda folder: indexes.Exact(index_folder=folder, override=True),
    ],
    ids=["PLAID", "Voyager", "Exact"],
)
@pytest.mark.parametrize(
    "extra", [{"document": ["a"]}, {"metadatas": [{}]}, {"batchsize": 8}]
)
def test_add_documents_refuses_unknown_keywords(
    make, extra: dict, tmp_path: Path
) -> None:
    index = make(str(tmp_path))
    ids = [f"d{i}" for i in range(6)]
    with pytest.raises(TypeError, match=next(iter(extra))):
        index.add_documents(documents_ids=ids, documents_embeddings=_docs(), **extra)
    assert len(index) == 0  # nothing was written
    index.add_documents(documents_ids=ids, documents_embeddings=_docs(), batch_size=2)
    assert len(index) == 6


def test_index_constructors_name_a_misspelt_keyword(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="show_progess"):
        indexes.PLAID(index_folder=str(tmp_path), show_progess=False)
    with pytest.raises(TypeError, match="ef_serch"):
        indexes.Voyager(index_folder=str(tmp_path), ef_serch=10)
    # PyLate's Stanford-only settings are accepted, with a warning.
    with pytest.warns(FutureWarning, match="ncells"):
        indexes.PLAID(index_folder=str(tmp_path), override=True, ncells=4)


def test_search_and_encode_name_a_misspelt_keyword(
    tmp_path: Path, fixtures_dir: Path
) -> None:
    index = indexes.Exact(index_folder=str(tmp_path), override=True)
    index.add_documents(documents_ids=["a", "b"], documents_embeddings=_docs(2))
    with pytest.raises(TypeError, match="subsett"):
        index(_docs(1), k=1, subsett=["a"])
    model = models.ColBERT(str(fixtures_dir / "models" / "tiny-colbert"), device="cpu")
    with pytest.raises(TypeError, match="batchsize"):
        model.encode(["a text"], batchsize=8)
    with pytest.raises(TypeError, match="overwrite"):
        model.save(str(tmp_path / "model"), overwrite=True)
