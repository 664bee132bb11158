"""PyLate-format model cards: generated, kept when loaded, rebuilt after training, pushed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import SHARED
from datasets import Dataset
from sentence_transformers import (
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)

from pylate_clone import evaluation, hf_hub, losses, models, utils

EXAMPLE = SHARED / "spec" / "model-card-example-answerai-colbert-small.md"


def headings(card: str) -> list[str]:
    # Headings outside HTML comments and code blocks, in order.
    card = re.sub(r"<!--.*?-->", "", card, flags=re.S)
    card = re.sub(r"```.*?```", "", card, flags=re.S)
    return [line.strip() for line in card.splitlines() if line.startswith("#")]


def front_matter(card: str) -> str:
    return card.split("---")[1]


@pytest.fixture
def tiny_colbert(fixtures_dir: Path) -> Path:
    return fixtures_dir / "models" / "tiny-colbert"


def test_card_data_is_pylates(tiny_colbert: Path) -> None:
    model = models.ColBERT(str(tiny_colbert), device="cpu")
    assert isinstance(model.model_card_data, hf_hub.PylateModelCardData)
    assert model.model_card_data.library_name == "PyLate"
    versions = hf_hub.get_versions()
    assert {
        "python",
        "torch",
        "transformers",
        "sentence_transformers",
        "pylate",
    } <= set(versions)


def test_loaded_model_keeps_its_card(tiny_colbert: Path, tmp_path: Path) -> None:
    model = models.ColBERT(str(tiny_colbert), device="cpu")
    model.save(str(tmp_path / "out"))
    saved = (tmp_path / "out" / "README.md").read_text()
    assert saved == (tiny_colbert / "README.md").read_text()


def test_new_card_follows_pylates_layout(fixtures_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = models.ColBERT(str(fixtures_dir / "models" / "tiny-bert"), device="cpu")
    model.save(str(tmp_path / "out"), model_name="someone/tiny-colbert")
    card = (tmp_path / "out" / "README.md").read_text()
    meta = front_matter(card)
    assert "library_name: PyLate" in meta
    assert "pipeline_tag: sentence-similarity" in meta
    for tag in ("ColBERT", "PyLate", "sentence-transformers"):
        assert f"- {tag}\n" in meta
    assert "**Document Length:** 180 tokens" in card
    assert "**Query Length:** 32 tokens" in card
    assert "**Output Dimensionality:** 128" in card
    assert "**Similarity Function:** MaxSim" in card
    # Indexing, retrieval and reranking snippets load the repo id.
    assert card.count('model_name_or_path="someone/tiny-colbert"') == 2
    for call in ("indexes.Voyager(", "retrieve.ColBERT(", "rank.rerank("):
        assert call in card
    # Same sections, in the same order, as a card PyLate generated.
    ours = [h.split(" ", 1)[1] for h in headings(card)[1:]]
    theirs = [h.split(" ", 1)[1] for h in headings(EXAMPLE.read_text())[1:]]
    assert ours == theirs


def test_trained_model_gets_a_training_card(tiny_colbert: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = models.ColBERT(str(tiny_colbert), device="cpu")
    rows = [
        {
            "query": f"question {i} about topic {i % 4}",
            "positive": f"an answer about topic {i % 4}, number {i}",
            "negative": f"a text about topic {(i + 2) % 4}, number {i}",
        }
        for i in range(8)
    ]
    data = Dataset.from_list(rows)
    evaluator = evaluation.ColBERTTripletEvaluator(
        data["query"][:4], data["positive"][:4], data["negative"][:4], name="toy"
    )
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "run"),
        num_train_epochs=1,
        per_device_train_batch_size=4,
        learning_rate=1e-4,
        eval_strategy="steps",
        eval_steps=1,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=data,
        eval_dataset=data,
        loss=losses.Contrastive(model),
        evaluator=evaluator,
        data_collator=utils.ColBERTCollator(model.tokenize),
    )
    trainer.train()
    model.save(str(tmp_path / "trained"))
    card = (tmp_path / "trained" / "README.md").read_text()
    assert card != (tiny_colbert / "README.md").read_text()
    meta = front_matter(card)
    assert "library_name: PyLate" in meta and "- loss:Contrastive" in meta
    assert "generated_from_trainer" in meta
    for section in (
        "### Training Dataset",
        "### Training Hyperparameters",
        "### Training Logs",
        "## Evaluation",
        "### Framework Versions",
        "#### PyLate",
    ):
        assert section in card, section
    assert "`learning_rate`: 0.0001" in card
    assert "ColBERTTripletEvaluator" in card and "accuracy" in card.lower()
    assert "pylate_clone.losses.contrastive.Contrastive" in card


def test_push_to_hub_uploads_the_saved_card(
    fixtures_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    import huggingface_hub

    staged: dict[str, Path] = {}

    def create_repo(self, repo_id, **kwargs):
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, repo_id, folder_path, **kwargs):
        # The staged folder is what the hub would receive: keep a copy.
        staged["folder"] = Path(shutil.copytree(folder_path, tmp_path / "staged"))
        url = f"https://huggingface.co/{repo_id}/commit/0"
        return SimpleNamespace(commit_url=url, pr_url=None)

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    torch.manual_seed(0)
    model = models.ColBERT(str(fixtures_dir / "models" / "tiny-bert"), device="cpu")
    model.push_to_hub("someone/pushed", replace_model_card=True)
    card = (staged["folder"] / "README.md").read_text()
    assert "library_name: PyLate" in card
    assert 'model_name_or_path="someone/pushed"' in card
    model.save(str(tmp_path / "saved"), model_name="someone/pushed")
    assert (tmp_path / "saved" / "README.md").read_text() == card
    reloaded = models.ColBERT(str(staged["folder"]), device="cpu")
    assert reloaded.model_card_data.library_name == "PyLate"
