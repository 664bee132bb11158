"""Real fine-tuning on a SciFact slice with the example scripts (marked slow, run in CI).

all-MiniLM-L6-v2 (offline) becomes a ColBERT; a few training steps on SciFact train
must lower the loss and raise nDCG@10 on a slice of SciFact test (tens of queries,
a few hundred abstracts).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str):
    sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def slice_arguments(data_dir: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--data-dir", str(data_dir / "scifact"),
        "--output-dir", str(tmp_path / "out"),
        "--max-test-queries", "30",
        "--max-documents", "150",
        "--document-length", "96",
        "--seed", "0",
        *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_contrastive_example_on_scifact_slice(data_dir, tmp_path):
    example = load_example("train_contrastive")
    result = example.main(
        slice_arguments(
            data_dir, tmp_path,
            "--max-train-rows", "80", "--batch-size", "16", "--max-steps", "5",
            "--learning-rate", "1e-4",
        )
    )  # fmt: skip
    assert result["probe_loss_after"] < result["probe_loss_before"], result
    assert result["after_ndcg@10"] > result["before_ndcg@10"], result
    assert (tmp_path / "out" / "final" / "modules.json").is_file()


@pytest.mark.slow
def test_distillation_example_on_scifact_slice(data_dir, tmp_path):
    example = load_example("train_distillation")
    result = example.main(
        slice_arguments(
            data_dir, tmp_path,
            "--max-train-rows", "64", "--batch-size", "8", "--max-steps", "8",
            "--learning-rate", "1e-4", "--n-ways", "4",
        )
    )  # fmt: skip
    assert result["probe_loss_after"] < result["probe_loss_before"], result
    assert result["after_ndcg@10"] > result["before_ndcg@10"], result
