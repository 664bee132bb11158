"""ColBERTCollator and KDProcessing: column handling, labels, prompts, bad input."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset, DatasetDict

from pylate_clone import utils


class FakeTokenizer:
    """Records calls; ids are text lengths so the output is easy to check."""

    def __init__(self):
        self.calls = []

    def __call__(self, texts, is_query=True, pad=False, task=None):
        self.calls.append(
            {"texts": list(texts), "is_query": is_query, "pad": pad, "task": task}
        )
        length = 4 if is_query else 6
        ids = torch.tensor([[len(t)] + [0] * (length - 1) for t in texts])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_query_and_document_columns():
    tokenizer = FakeTokenizer()
    collator = utils.ColBERTCollator(tokenizer)
    batch = collator(
        [
            {"query": "q1", "positive": "p1", "negative": "n1", "query_id": 7},
            {"query": "q22", "positive": "p22", "negative": "n22", "query_id": 8},
        ]
    )
    assert batch["return_loss"] is True
    assert set(batch) == {
        "return_loss",
        *(
            f"{c}_{k}"
            for c in ("query", "positive", "negative")
            for k in ("input_ids", "attention_mask")
        ),
    }
    assert [call["is_query"] for call in tokenizer.calls] == [True, False, False]
    assert all(call["pad"] for call in tokenizer.calls)
    assert batch["query_input_ids"][:, 0].tolist() == [2, 3]
    assert batch["positive_input_ids"].shape == (2, 6)


def test_anchor_is_a_query_and_label_column():
    tokenizer = FakeTokenizer()
    batch = utils.ColBERTCollator(tokenizer)(
        [
            {"anchor": "a", "text": "t", "label": 1.0},
            {"anchor": "b", "text": "u", "label": 0.0},
        ]
    )
    assert [call["is_query"] for call in tokenizer.calls] == [True, False]
    assert torch.equal(batch["label"], torch.tensor([1.0, 0.0]))
    assert "label_input_ids" not in batch


def test_kd_documents_are_flattened_and_scores_become_label():
    tokenizer = FakeTokenizer()
    batch = utils.ColBERTCollator(tokenizer)(
        [
            {"query": "q", "documents": ["a", "bb", "ccc"], "scores": [3.0, 2.0, 1.0]},
            {"query": "r", "documents": ["dddd", "e", "ff"], "scores": [1.0, 2.0, 3.0]},
        ]
    )
    assert tokenizer.calls[1]["texts"] == ["a", "bb", "ccc", "dddd", "e", "ff"]
    assert batch["documents_input_ids"].shape == (6, 6)
    assert batch["label"].shape == (2, 3) and batch["label"].dtype == torch.float32


def test_prompts_router_mapping_and_prompt_lengths():
    tokenizer = FakeTokenizer()
    collator = utils.ColBERTCollator(
        tokenizer,
        prompts={"query": "search: "},
        router_mapping={"query": "query", "positive": "document"},
        include_prompt_lengths=True,
    )
    batch = collator([{"query": "q", "positive": "p"}])
    assert tokenizer.calls[-2]["texts"] == ["search: q"] or tokenizer.calls[-1][
        "texts"
    ] == ["p"]
    assert any(
        call["texts"] == ["search: q"] and call["task"] == "query"
        for call in tokenizer.calls
    )
    assert "query_prompt_length" in batch and "positive_prompt_length" not in batch
    nested = utils.ColBERTCollator(tokenizer, prompts={"ds": {"query": "x"}})
    with pytest.raises(ValueError, match="nested"):
        nested([{"query": "q", "positive": "p"}])


def test_non_text_column_is_a_clear_error():
    with pytest.raises(ValueError, match="'weight'"):
        utils.ColBERTCollator(FakeTokenizer())([{"query": "q", "weight": 3}])


def test_empty_batch_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        utils.ColBERTCollator(FakeTokenizer())([])


@pytest.fixture
def kd_data():
    queries = Dataset.from_list(
        [{"query_id": 1, "text": "q one"}, {"query_id": 2, "text": "q two"}]
    )
    documents = Dataset.from_list(
        [{"document_id": d, "text": f"doc {d}"} for d in (10, 11, 12, 20)]
    )
    train = Dataset.from_list(
        [
            {
                "query_id": 1,
                "document_ids": "[10, 11, 12]",
                "scores": "[3.0, 2.0, 1.0]",
            },
            {
                "query_id": 2,
                "document_ids": "[20, 99, 10]",
                "scores": "[1.5, 0.5, 0.1]",
            },
        ]
    )
    return queries, documents, train


def test_kd_processing_transform_and_map(kd_data, caplog):
    queries, documents, train = kd_data
    processing = utils.KDProcessing(
        DatasetDict({"train": queries}), DatasetDict({"train": documents}), n_ways=2
    )
    train.set_transform(processing.transform)
    row = train[1]
    assert row["query"] == "q two"
    assert row["documents"] == ["doc 20", ""]  # id 99 is unknown
    assert row["scores"] == [1.5, 0.5]
    assert "Unable to find document: 99" in caplog.text
    mapped = processing.map({"query_id": 1, "document_ids": [12, 10], "scores": [1, 2]})
    assert mapped == {
        "scores": [1, 2],
        "query": "q one",
        "documents": ["doc 12", "doc 10"],
    }


def test_kd_processing_bad_input(kd_data):
    queries, documents, _ = kd_data
    processing = utils.KDProcessing(queries, documents)
    with pytest.raises(
        ValueError, match="'scores' has 2 values but 'document_ids' has 3"
    ):
        processing.map(
            {"query_id": 1, "document_ids": [10, 11, 12], "scores": [1.0, 2.0]}
        )
    with pytest.raises(ValueError, match=r"\['scores'\]"):
        processing.map({"query_id": 1, "document_ids": [10]})
    with pytest.raises(ValueError, match="document_id"):
        utils.KDProcessing(queries, queries)
    with pytest.raises(KeyError, match="query_id 5"):
        processing.map({"query_id": 5, "document_ids": [10], "scores": [1.0]})
    with pytest.raises(ValueError, match="n_ways"):
        utils.KDProcessing(queries, documents, n_ways=0)
