"""The losses, collator and evaluators inside sentence-transformers' trainer (tiny-colbert)."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from datasets import Dataset
from sentence_transformers import (
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.base.sampler import BatchSamplers

from pylate_clone import evaluation, losses, models, utils

TOPICS = ["cats", "bread", "python", "paris", "coffee", "football", "rain", "music"]


@pytest.fixture
def model(fixtures_dir):
    torch.manual_seed(0)
    return models.ColBERT(
        model_name_or_path=str(fixtures_dir / "models" / "tiny-colbert"), device="cpu"
    )


@pytest.fixture
def triplets() -> Dataset:
    rows = [
        {
            "query": f"question {i} about {TOPICS[i % 8]}",
            "positive": f"an answer about {TOPICS[i % 8]} number {i}",
            "negative": f"a text about {TOPICS[(i + 3) % 8]} number {i}",
        }
        for i in range(16)
    ]
    return Dataset.from_list(rows)


def make_args(tmp_path, **overrides) -> SentenceTransformerTrainingArguments:
    settings = dict(
        output_dir=str(tmp_path / "run"),
        num_train_epochs=1,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        learning_rate=1e-3,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=2,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        seed=0,
    )
    settings.update(overrides)
    return SentenceTransformerTrainingArguments(**settings)


def test_trainer_contrastive_evaluators_checkpoints_reload(model, triplets, tmp_path):
    ir = evaluation.PyLateInformationRetrievalEvaluator(
        queries={str(i): q for i, q in enumerate(list(triplets["query"])[:8])},
        corpus={
            str(i): d
            for i, d in enumerate(
                list(triplets["positive"]) + list(triplets["negative"])
            )
        },
        relevant_docs={str(i): {str(i)} for i in range(8)},
        name="toy",
    )
    triplet = evaluation.ColBERTTripletEvaluator(
        list(triplets["query"])[:4],
        list(triplets["positive"])[:4],
        list(triplets["negative"])[:4],
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=make_args(tmp_path),
        train_dataset=triplets,
        loss=losses.Contrastive(model),
        evaluator=[triplet, ir],
        data_collator=utils.ColBERTCollator(model.tokenize),
    )
    trainer.train()
    history = trainer.state.log_history
    train_losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(train_losses) == 4 and all(math.isfinite(x) for x in train_losses)
    evals = [entry for entry in history if "eval_toy_MaxSim_ndcg@10" in entry]
    assert len(evals) == 2 and all("eval_accuracy" in entry for entry in evals)

    checkpoint = tmp_path / "run" / "checkpoint-4"
    assert checkpoint.is_dir()
    config = json.loads((checkpoint / "config_sentence_transformers.json").read_text())
    assert config["similarity_fn_name"] == "MaxSim"
    for key in ("query_prefix", "document_prefix", "query_length", "document_length"):
        assert key in config
    modules = json.loads((checkpoint / "modules.json").read_text())
    assert any("Dense" in module["type"] for module in modules)
    reloaded = models.ColBERT(model_name_or_path=str(checkpoint), device="cpu")
    model.eval()
    texts = ["question 1 about bread", "an answer about cats"]
    for is_query in (True, False):
        before = model.encode(texts, is_query=is_query)
        after = reloaded.encode(texts, is_query=is_query)
        for a, b in zip(before, after):
            torch.testing.assert_close(torch.as_tensor(a), torch.as_tensor(b))


def test_trainer_cached_contrastive(model, triplets, tmp_path):
    trainer = SentenceTransformerTrainer(
        model=model,
        args=make_args(
            tmp_path,
            eval_strategy="no",
            save_strategy="no",
            per_device_train_batch_size=8,
        ),
        train_dataset=triplets,
        loss=losses.CachedContrastive(model, mini_batch_size=3),
        data_collator=utils.ColBERTCollator(model.tokenize),
    )
    before = [p.detach().clone() for p in model.parameters()]
    trainer.train()
    train_losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(train_losses) == 2 and all(math.isfinite(x) for x in train_losses)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_trainer_torch_compile(model, triplets, tmp_path):
    """``torch_compile=True`` wraps the model; losses see through the wrapper.

    The ``eager`` backend exercises the Dynamo capture without spending minutes
    in the C++ code generator on this 2-core machine.
    """
    trainer = SentenceTransformerTrainer(
        model=model,
        args=make_args(
            tmp_path,
            eval_strategy="no",
            save_strategy="no",
            torch_compile=True,
            torch_compile_backend="eager",
            max_steps=2,
        ),
        train_dataset=triplets,
        loss=losses.Contrastive(model),
        data_collator=utils.ColBERTCollator(model.tokenize),
    )
    trainer.train()
    assert trainer.model_wrapped is not model or hasattr(
        trainer.model_wrapped, "_orig_mod"
    )
    train_losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert train_losses and all(math.isfinite(x) for x in train_losses)


def test_losses_accept_compiled_model(model, triplets):
    model.eval()
    batch = utils.ColBERTCollator(model.tokenize)(list(triplets.select(range(4))))
    features = [
        {k[len(p) + 1 :]: v for k, v in batch.items() if k.startswith(p + "_")}
        for p in ("query", "positive", "negative")
    ]
    compiled = torch.compile(model, backend="eager")
    with torch.no_grad():
        plain = losses.Contrastive(model)(features)
        wrapped = losses.Contrastive(compiled)(features)
    torch.testing.assert_close(plain, wrapped)


def test_trainer_distillation_with_kd_processing(model, tmp_path):
    queries = Dataset.from_list(
        [{"query_id": i, "text": f"question about {t}"} for i, t in enumerate(TOPICS)]
    )
    documents = Dataset.from_list(
        [
            {"document_id": 100 + i, "text": f"a passage on {t}"}
            for i, t in enumerate(TOPICS)
        ]
    )
    train = Dataset.from_list(
        [
            {
                "query_id": i,
                "document_ids": [100 + i, 100 + (i + 1) % 8, 100 + (i + 2) % 8],
                "scores": [9.0, 4.0, 1.0],
            }
            for i in range(8)
        ]
    )
    train.set_transform(utils.KDProcessing(queries, documents, n_ways=3).transform)
    kd_eval = evaluation.ColBERTDistillationEvaluator(
        queries=[f"question about {t}" for t in TOPICS[:2]],
        documents=[[f"a passage on {t}" for t in TOPICS[:3]]] * 2,
        scores=[[9.0, 4.0, 1.0], [4.0, 9.0, 1.0]],
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=make_args(
            tmp_path, save_strategy="no", batch_sampler=BatchSamplers.BATCH_SAMPLER
        ),
        train_dataset=train,
        loss=losses.Distillation(model),
        evaluator=kd_eval,
        data_collator=utils.ColBERTCollator(model.tokenize),
    )
    trainer.train()
    history = trainer.state.log_history
    assert [e for e in history if "eval_kl_divergence" in e]
    assert all(math.isfinite(e["loss"]) for e in history if "loss" in e)
    model.save_pretrained(str(tmp_path / "kd-final"))
    assert os.path.isfile(tmp_path / "kd-final" / "modules.json")


def test_trainer_missing_columns_are_clear(model, tmp_path):
    only_queries = Dataset.from_list([{"query": f"q{i}"} for i in range(8)])
    trainer = SentenceTransformerTrainer(
        model=model,
        args=make_args(tmp_path, eval_strategy="no", save_strategy="no"),
        train_dataset=only_queries,
        loss=losses.Contrastive(model),
        data_collator=utils.ColBERTCollator(model.tokenize),
    )
    with pytest.raises(ValueError, match="text columns"):
        trainer.train()
    no_scores = Dataset.from_list(
        [{"query": "q", "documents": ["a", "b"]} for _ in range(4)]
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=make_args(
            tmp_path,
            eval_strategy="no",
            save_strategy="no",
            batch_sampler=BatchSamplers.BATCH_SAMPLER,
        ),
        train_dataset=no_scores,
        loss=losses.Distillation(model),
        data_collator=utils.ColBERTCollator(model.tokenize),
    )
    with pytest.raises(ValueError, match="'scores'"):
        trainer.train()
