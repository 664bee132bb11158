"""The real all-MiniLM-L6-v2 (offline package) as a ColBERT, by path and by hub id."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import HUB_ID

from pylate_clone import models, rank

QUERIES = ["how do plants make energy from light?", "what causes rain?"]
DOCUMENTS = [
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.",
    "Rain forms when water vapour condenses into droplets heavy enough to fall.",
    "The stock market closed higher on Tuesday.",
]


@pytest.fixture(scope="module")
def minilm_colbert(minilm_dir):
    return models.ColBERT(str(minilm_dir), device="cpu")


def test_minilm_builds_a_128_dim_colbert(minilm_colbert):
    model = minilm_colbert
    assert (
        len(model) == 2 and model[1].out_features == 128 and model[1].in_features == 384
    )
    assert model.get_sentence_embedding_dimension() == 128
    queries = model.encode(QUERIES, is_query=True)
    assert all(q.shape == (32, 128) for q in queries)
    documents = model.encode(DOCUMENTS, is_query=False)
    for doc in documents:
        np.testing.assert_allclose(np.linalg.norm(doc, axis=1), 1.0, atol=1e-5)


def test_minilm_save_load_identical(minilm_colbert, tmp_path):
    minilm_colbert.save(str(tmp_path))
    reloaded = models.ColBERT(str(tmp_path), device="cpu")
    for a, b in zip(
        minilm_colbert.encode(DOCUMENTS, is_query=False),
        reloaded.encode(DOCUMENTS, is_query=False),
    ):
        np.testing.assert_array_equal(a, b)


def test_hub_id_loads_offline(offline_hub, minilm_colbert):
    model = models.ColBERT(HUB_ID, device="cpu")
    assert model[1].out_features == 128
    # The backbone and tokenizer are the same; only the new projection is random.
    model[1].load_state_dict(minilm_colbert[1].state_dict())
    model[0].auto_model.get_input_embeddings().weight.data[-2:] = (
        minilm_colbert[0].auto_model.get_input_embeddings().weight.data[-2:]
    )
    for a, b in zip(
        model.encode(DOCUMENTS, is_query=False),
        minilm_colbert.encode(DOCUMENTS, is_query=False),
    ):
        np.testing.assert_array_equal(a, b)
    # The short name resolves to the sentence-transformers organisation too.
    assert models.ColBERT("all-MiniLM-L6-v2", device="cpu")[1].out_features == 128


def test_minilm_colbert_ranks_sensibly(minilm_colbert):
    # Even with a random projection, MaxSim over MiniLM token vectors finds the
    # topical document for each query.
    queries = minilm_colbert.encode(QUERIES, is_query=True)
    documents = minilm_colbert.encode([DOCUMENTS, DOCUMENTS], is_query=False)
    results = rank.rerank([[0, 1, 2], [0, 1, 2]], queries, documents)
    assert results[0][0]["id"] == 0
    assert results[1][0]["id"] == 1
