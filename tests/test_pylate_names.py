"""PyLate 1.6 names that only re-export or alias something: they behave as PyLate's.

``test_api_surface.py`` checks that the names exist with PyLate's signatures;
this file checks what they do.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pylate_clone import indexes, rank, utils
from pylate_clone.hf_hub import model_card
from pylate_clone.indexes import voyager
from pylate_clone.rank import rank as rank_module
from pylate_clone.utils import distributed


def test_rank_rank_holds_score_xtr_and_reshape_embeddings() -> None:
    # PyLate code imports both from pylate.rank.rank.
    assert rank_module.score_xtr is rank.score_xtr
    assert rank_module.reshape_embeddings is indexes.utils.reshape_embeddings
    assert voyager.reshape_embeddings is indexes.utils.reshape_embeddings
    results = rank_module.score_xtr(
        query_doc_ids=[["a", "b"], ["b", "c"]],
        query_scores=[[0.9, 0.5], [0.8, 0.2]],
        k=2,
    )
    # b: 0.5 + 0.8; a: 0.9 + min(0.8, 0.2) imputed; c: 0.5 + 0.2.
    assert [r["id"] for r in results] == ["b", "a"]
    assert results[0]["score"] == pytest.approx(1.3)
    assert results[1]["score"] == pytest.approx(1.1)


def test_reshape_embeddings_follows_pylate() -> None:
    matrix = np.arange(6, dtype=np.float64).reshape(3, 2)
    assert voyager.reshape_embeddings(matrix).shape == (1, 3, 2)
    tensor = torch.ones(2, 4, dtype=torch.float16)
    out = rank_module.reshape_embeddings(tensor)
    assert isinstance(out, np.ndarray) and out.shape == (1, 2, 4)
    listed = rank_module.reshape_embeddings([torch.zeros(2, 3), torch.ones(1, 3)])
    assert [type(m) for m in listed] == [np.ndarray, np.ndarray]
    assert [m.shape for m in listed] == [(2, 3), (1, 3)]
    batch = np.zeros((2, 3, 4))
    assert rank_module.reshape_embeddings(batch) is batch


def test_model_card_drops_the_ignored_fields() -> None:
    assert model_card.IGNORED_FIELDS == ["model", "trainer", "eval_results_dict"]
    data = model_card.PylateModelCardData(local_files_only=True)
    assert data.predict_example is None and data.trainer is None
    data.trainer = object()  # set by sentence-transformers while training
    as_dict = data.to_dict()
    assert not set(model_card.IGNORED_FIELDS) & set(as_dict)
    assert as_dict["library_name"] == "PyLate"
    with pytest.raises(TypeError, match="trainer"):
        model_card.PylateModelCardData(trainer=object())  # init=False, as in PyLate


def test_not_init_warning_switches_the_warning_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tensor = torch.ones(2)
    monkeypatch.setattr(distributed, "_warned", False)
    monkeypatch.setattr(distributed, "not_init_warning", False)
    with caplog.at_level(logging.WARNING, logger=distributed.__name__):
        assert utils.all_gather(tensor)[0] is tensor
    assert not caplog.records
    monkeypatch.setattr(distributed, "not_init_warning", True)
    with caplog.at_level(logging.WARNING, logger=distributed.__name__):
        utils.all_gather(tensor)
        utils.all_gather(tensor)
    assert len(caplog.records) == 1  # once per process
    assert "not initialised" in caplog.records[0].getMessage()


def test_base_name_and_recreate_alias_pylates_names(tmp_path: Path) -> None:
    index = indexes.Voyager(
        index_folder=str(tmp_path), index_name="named", override=True
    )
    assert (index.name, index.recreate) == ("named", True)
    with pytest.raises(AttributeError):
        index.name = "other"  # read-only: index_name is the setting


def test_server_module_imports_without_serving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PyLate's script parses sys.argv when imported; ours must not.
    monkeypatch.setattr(sys, "argv", ["server.py", "--no-such-flag"])
    sys.modules.pop("pylate_clone.server.server", None)
    from pylate_clone.server import server

    args = server.parse_args([])
    assert (args.host, args.port, args.model) == (
        "0.0.0.0",
        8002,
        "lightonai/GTE-ModernColBERT-v1",
    )
    assert server.parse_args(["--port", "9000", "--model", "m"]).port == 9000

    class Recorder:
        def encode(self, sentences, **kwargs):
            return ("encoded", list(sentences), kwargs)

    encode = server.wrap_encode_function(Recorder(), is_query=False)
    assert encode(["a", "b"]) == ("encoded", ["a", "b"], {"is_query": False})


def test_server_module_schemas_are_pylates() -> None:
    pytest.importorskip("pydantic")
    from pylate_clone.server import server

    request = server.EmbeddingRequest(input=["late interaction"])
    assert (request.is_query, request.model) == (
        True,
        "lightonai/GTE-ModernColBERT-v1",
    )
    assert server.EmbeddingRequest is server.EmbeddingRequest
    assert set(server.EmbeddingResponse.model_fields) == {"data", "model", "usage"}
    with pytest.raises(AttributeError, match="no_such_name"):
        server.no_such_name  # noqa: B018
