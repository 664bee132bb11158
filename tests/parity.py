"""Helpers to replay the PyLate 1.6.0 reference cases of ../shared/fixtures."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from conftest import FIXTURES

EMBEDDING_ATOL = 1e-5


@lru_cache(maxsize=1)
def manifest() -> dict:
    return json.loads((FIXTURES / "manifest.json").read_text())


@lru_cache(maxsize=1)
def texts() -> list[str]:
    raw = json.loads((FIXTURES / "outputs" / "texts.json").read_text())
    return list(raw["texts"])


def cases(kind: str) -> list[dict]:
    return [case for case in manifest()["cases"] if case["kind"] == kind]


def model_path(case_model: str) -> str:
    return str(FIXTURES / case_model)


_MODELS: dict[tuple, Any] = {}


def load_fixture_model(case_model: str, **kwargs: Any):
    """Load (and cache) a fixture model; tiny-st-dense gets PyLate's random prefix rows."""
    from pylate_clone.models import ColBERT

    key = (case_model, tuple(sorted(kwargs.items())))
    if key not in _MODELS:
        model = ColBERT(
            model_name_or_path=model_path(case_model), device="cpu", **kwargs
        )
        if case_model.endswith("tiny-st-dense"):
            inject_added_rows(model, "tiny-st-dense")
        model.eval()
        _MODELS[key] = model
    return _MODELS[key]


def random_parts(name: str) -> dict[str, np.ndarray]:
    path = FIXTURES / "outputs" / "load" / f"{name}__random_parts.npz"
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def inject_added_rows(model, name: str) -> None:
    rows = torch.from_numpy(random_parts(name)["added_word_embedding_rows"])
    embeddings = model[0].auto_model.get_input_embeddings().weight
    with torch.no_grad():
        embeddings[-rows.shape[0] :] = rows.to(embeddings.dtype)


def load_npz(relative: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / relative, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def flatten_output(output: Any, structure: str) -> dict[str, np.ndarray]:
    """Flatten an encode() result with the fixtures' npz key convention."""
    if structure == "dict_of_lists":
        return {
            f"{key}__item_{i:03d}": to_numpy(item)
            for key, items in output.items()
            for i, item in enumerate(items)
        }
    if structure == "single":
        return {"value": to_numpy(output)}
    if structure == "nested_list":
        return {
            f"g{g}_item_{i:03d}": to_numpy(item)
            for g, group in enumerate(output)
            for i, item in enumerate(group)
        }
    if structure in ("list", "list_of_stacked_groups"):
        return {f"item_{i:03d}": to_numpy(item) for i, item in enumerate(output)}
    raise ValueError(f"unknown output structure {structure!r}")


def resolve_inputs(case: dict) -> Any:
    inputs = case["inputs"]
    all_texts = texts()
    if "text_groups" in inputs:
        return [[all_texts[i] for i in group] for group in inputs["text_groups"]]
    if "text" in inputs:
        return all_texts[inputs["text"]]
    return [all_texts[i] for i in inputs["texts"]]


def root() -> Path:
    return FIXTURES
