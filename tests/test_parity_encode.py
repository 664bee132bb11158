"""encode() and tokenize() equal PyLate 1.6.0's outputs on the five fixture models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from parity import (
    EMBEDDING_ATOL,
    cases,
    flatten_output,
    load_fixture_model,
    load_npz,
    resolve_inputs,
    texts,
)

ENCODE_CASES = cases("encode")
TOKENIZE_CASES = [(case, sub) for case in cases("tokenize") for sub in case["cases"]]


def test_every_fixture_case_is_replayed(manifest):
    kinds = {case["kind"] for case in manifest["cases"]}
    assert len(ENCODE_CASES) == 41
    assert len(TOKENIZE_CASES) == 20
    assert kinds == {"encode", "tokenize", "scores", "rerank", "losses", "retrieval"}


@pytest.mark.parametrize("case", ENCODE_CASES, ids=[c["id"] for c in ENCODE_CASES])
def test_encode_matches_pylate(case):
    model = load_fixture_model(case["model"], **case.get("model_load_kwargs", {}))
    kwargs = dict(case["call"]["kwargs"])
    output = model.encode(resolve_inputs(case), **kwargs)
    structure = case["output"]["structure"]
    expected = load_npz(case["output_file"])
    got = flatten_output(output, structure)
    assert sorted(got) == sorted(expected)
    wants_tensor = kwargs.get("convert_to_tensor", False)
    for key, reference in expected.items():
        value = got[key]
        assert value.shape == reference.shape, key
        assert value.dtype == reference.dtype, key
        if reference.dtype.kind == "f":
            np.testing.assert_allclose(
                value, reference, atol=EMBEDDING_ATOL, rtol=0, err_msg=key
            )
        else:
            np.testing.assert_array_equal(value, reference, err_msg=key)
    leaves = output.values() if isinstance(output, dict) else [output]
    for leaf in leaves:
        first = leaf
        while isinstance(first, list):
            first = first[0]
        assert isinstance(first, torch.Tensor if wants_tensor else np.ndarray)


@pytest.mark.parametrize(
    "case,sub",
    TOKENIZE_CASES,
    ids=[f"{c['id']}/{s['case']}" for c, s in TOKENIZE_CASES],
)
def test_tokenize_matches_pylate(case, sub):
    model = load_fixture_model(case["model"], **sub.get("model_load_kwargs", {}))
    features = model.tokenize(texts(), **sub["kwargs"])
    expected = load_npz(case["output_file"])
    for key_info in sub["keys"]:
        key = key_info["key"]
        reference = expected[f"{sub['case']}__{key}"]
        assert features[key].dtype == torch.int64
        np.testing.assert_array_equal(features[key].numpy(), reference, err_msg=key)
    assert model[0].max_seq_length == sub["first_module_max_seq_length_after_call"]
