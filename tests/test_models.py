"""Loading, building and saving ColBERT models in PyLate's format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from parity import load_fixture_model, manifest, model_path, random_parts, texts

from pylate_clone import models

VERSION_KEY = "__version__"


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def _without_version(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != VERSION_KEY}


@pytest.mark.parametrize(
    "name", ["tiny-colbert", "tiny-colbert-custom", "tiny-st-dense", "tiny-stanford"]
)
def test_resave_writes_pylates_config_files(name, tmp_path):
    model = load_fixture_model(f"models/{name}")
    model.save_pretrained(str(tmp_path))
    reference = manifest()["models"][name]["resaved_by_pylate"]
    assert sorted(
        p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()
    ) == sorted(reference["files"])
    for file_name, expected in reference["configs"].items():
        got = _read(tmp_path / file_name)
        if file_name == "config_sentence_transformers.json":
            assert list(got) == list(expected), "key order differs from PyLate's"
            got, expected = _without_version(got), _without_version(expected)
        assert got == expected, file_name
    config = _read(tmp_path / "config.json")
    assert config["architectures"] == reference["config.json_architectures"]
    assert (
        _read(tmp_path / "tokenizer_config.json")["pad_token"]
        == reference["tokenizer_config.json_pad_token"]
    )


def test_saved_files_equal_fixture_files():
    # The checkpoints written by PyLate itself are what our save must produce.
    root = Path(model_path("models/tiny-colbert"))
    for name in ("modules.json", "sentence_bert_config.json", "1_Dense/config.json"):
        assert manifest()["models"]["tiny-colbert"]["saved_configs"][name] == _read(
            root / name
        )


@pytest.mark.parametrize(
    "name", ["tiny-colbert", "tiny-colbert-custom", "tiny-st-dense"]
)
def test_save_load_roundtrip_is_identical(name, tmp_path):
    model = load_fixture_model(f"models/{name}")
    model.save(str(tmp_path))
    reloaded = models.ColBERT(str(tmp_path), device="cpu")
    for is_query in (True, False):
        before = model.encode(texts(), is_query=is_query)
        after = reloaded.encode(texts(), is_query=is_query)
        for a, b in zip(before, after):
            np.testing.assert_array_equal(a, b)
    assert reloaded.skiplist == model.skiplist
    assert reloaded.query_prefix_id == model.query_prefix_id


def test_saved_checkpoint_loads_in_multi_vector_encoder(tmp_path):
    from sentence_transformers import MultiVectorEncoder

    model = load_fixture_model("models/tiny-colbert")
    model.save(str(tmp_path))
    other = MultiVectorEncoder(str(tmp_path), device="cpu")
    sample = texts()[7:12]
    for ours, theirs in zip(
        model.encode(sample, is_query=False), other.encode_document(sample)
    ):
        np.testing.assert_array_equal(ours, np.asarray(theirs))
    for ours, theirs in zip(
        model.encode(sample, is_query=True), other.encode_query(sample)
    ):
        np.testing.assert_array_equal(ours, np.asarray(theirs))


def test_bare_hf_encoder_gets_projection_and_prefix_tokens():
    parts = random_parts("tiny-bert")
    model = models.ColBERT(model_path("models/tiny-bert"), device="cpu")
    assert len(model) == 2
    assert isinstance(model[1], models.Dense)
    assert (model[1].in_features, model[1].out_features, model[1].bias) == (
        64,
        128,
        False,
    )
    assert (model.query_prefix_id, model.document_prefix_id) == (30522, 30523)
    assert len(model.tokenizer) == 30524
    # With PyLate's random parts injected it is the tiny-colbert fixture.
    with torch.no_grad():
        model[1].linear.weight.copy_(torch.from_numpy(parts["dense_weight"]))
        embeddings = model[0].auto_model.get_input_embeddings().weight
        embeddings[-2:] = torch.from_numpy(parts["added_word_embedding_rows"])
    reference = load_fixture_model("models/tiny-colbert")
    for a, b in zip(
        model.encode(texts(), is_query=False), reference.encode(texts(), is_query=False)
    ):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_stanford_checkpoint_settings():
    model = load_fixture_model("models/tiny-stanford")
    assert (model.query_prefix, model.document_prefix) == ("[unused0]", "[unused1]")
    assert (model.query_length, model.document_length) == (24, 100)
    assert model[1].out_features == 48 and model[1].bias is False
    assert len(model.tokenizer) == 30522


def test_st_model_keeps_dense_with_activation():
    model = load_fixture_model("models/tiny-st-dense")
    assert len(model) == 2
    assert isinstance(model[1].activation_function, torch.nn.Tanh)
    assert model[1].bias is True
    assert model.get_sentence_embedding_dimension() == 40


def test_explicit_arguments_beat_checkpoint_config():
    model = models.ColBERT(
        model_path("models/tiny-colbert"),
        device="cpu",
        query_length=12,
        document_prefix="",
        skiplist_words=[],
        do_query_expansion=False,
        attend_to_expansion_tokens=True,
    )
    assert model.query_length == 12
    assert model.document_prefix_id is None
    assert model.skiplist == []
    assert model.attend_to_expansion_tokens is False  # forced off without expansion
    features = model.tokenize(["a b c"], is_query=False)
    assert features["input_ids"][0, 1].item() != 30523


def test_embedding_size_appends_projection():
    model = models.ColBERT(
        model_path("models/tiny-colbert"), device="cpu", embedding_size=16
    )
    assert [m.out_features for m in list(model)[1:]] == [128, 16]
    assert model.encode("hello world", is_query=False).shape[1] == 16


def test_modular_construction_and_sequence_editing():
    from sentence_transformers.base.modules import Transformer

    transformer = Transformer(model_path("models/tiny-bert"))
    model = models.ColBERT(
        modules=[
            transformer,
            models.Dense(64, 32, activation_function=torch.nn.GELU()),
        ],
        query_length=8,
        document_length=16,
        device="cpu",
    )
    assert model.encode("some query", is_query=True).shape == (8, 32)
    model.append(models.Dense(32, 8))
    assert model.encode("doc", is_query=False).shape[1] == 8
    del model[2]
    assert model.encode("doc", is_query=False).shape[1] == 32


def test_dense_residual_and_config(tmp_path):
    dense = models.Dense(
        4, 6, bias=True, activation_function=torch.nn.ReLU(), use_residual=True
    )
    x = torch.randn(2, 3, 4)
    out = dense({"token_embeddings": x})["token_embeddings"]
    expected = torch.relu(dense.linear(x)) + dense.residual(x)
    torch.testing.assert_close(out, expected)
    dense.save(str(tmp_path))
    assert _read(tmp_path / "config.json") == {
        "in_features": 4,
        "out_features": 6,
        "bias": True,
        "activation_function": "torch.nn.modules.activation.ReLU",
        "use_residual": True,
    }
    loaded = models.Dense.load(str(tmp_path))
    torch.testing.assert_close(loaded({"token_embeddings": x})["token_embeddings"], out)
    with pytest.raises(ValueError, match="in_features"):
        models.Dense(0, 4)


def test_dense_refuses_foreign_activation(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps(
            {"in_features": 2, "out_features": 2, "activation_function": "os.system"}
        )
    )
    with pytest.raises(ValueError, match="activation_function"):
        models.Dense.load(str(tmp_path))


def test_similarity_is_maxsim():
    model = load_fixture_model("models/tiny-colbert")
    assert model.similarity_fn_name == "MaxSim"
    q = model.encode(texts()[:2], is_query=True, convert_to_tensor=True)
    d = model.encode(texts()[7:9], is_query=False, padding=True)
    d = torch.cat([torch.from_numpy(x) for x in d])
    assert model.similarity(torch.stack(q), d).shape == (2, 2)
    with pytest.raises(ValueError, match="similarity_fn_name"):
        model.similarity_fn_name = "cosine"


def test_encode_bad_input():
    model = load_fixture_model("models/tiny-colbert")
    with pytest.raises(ValueError, match="pool_factor"):
        model.encode(["a"], is_query=False, pool_factor=0)
    with pytest.raises(ValueError, match="prompt"):
        model.encode(["a"], prompt_name="missing")
    with pytest.raises(ValueError, match="output_value"):
        model.encode(["a"], output_value="sentence_embedding")
    with pytest.raises(ValueError, match="pool_factor"):
        model.encode(["a"], is_query=False, output_value=None, pool_factor=2)
    with pytest.raises(TypeError, match=r"sentences\[1\]"):
        model.encode(["a", 3])
    with pytest.raises(ValueError, match="batch_size"):
        model.encode(["a"], batch_size=0)
    with pytest.raises(ValueError, match="query_length"):
        models.ColBERT(model_path("models/tiny-colbert"), query_length=0)
    # Empty input is an empty result, not a crash.
    assert model.encode([], is_query=False) == []


def test_prompts_are_prepended():
    model = load_fixture_model("models/tiny-colbert")
    model.prompts["search"] = "search: "
    try:
        with_prompt = model.encode(["cats"], is_query=False, prompt_name="search")[0]
        literal = model.encode(["search: cats"], is_query=False)[0]
        np.testing.assert_array_equal(with_prompt, literal)
    finally:
        del model.prompts["search"]


def test_pooling_reduces_tokens_and_keeps_cls():
    model = load_fixture_model("models/tiny-colbert")
    full = model.encode(texts()[2], is_query=False)
    pooled = model.encode(texts()[2], is_query=False, pool_factor=3)
    n = full.shape[0] - 1
    assert pooled.shape[0] <= 1 + max(n // 3, 1)
    np.testing.assert_array_equal(pooled[0], full[0])
