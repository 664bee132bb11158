"""Bad embeddings at every scoring entry point: named argument, position, right error kind."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pylate_clone import scores
from pylate_clone.utils.validation import (
    as_matrices,
    as_tensor,
    check_finite,
    check_int,
    check_matrix,
    is_plain_matrix,
)

H = 8
rng = np.random.default_rng(0)


def _matrix(rows: int) -> np.ndarray:
    return rng.standard_normal((rows, H)).astype(np.float32)


def _group(n: int = 2, rows: int = 5) -> np.ndarray:
    return rng.standard_normal((n, rows, H)).astype(np.float32)


# Each entry point: (call, queries items, documents items). Items are what one
# position of the argument holds: (S, H) query matrices, (T, H) or (N, T, H) documents.
ENTRY_POINTS = {
    "colbert_scores": (
        scores.colbert_scores,
        lambda: [_matrix(4) for _ in range(3)],
        lambda: [_matrix(6) for _ in range(3)],
    ),
    "colbert_scores_pairwise": (
        scores.colbert_scores_pairwise,
        lambda: [_matrix(4), _matrix(3), _matrix(5)],
        lambda: [_matrix(6), _matrix(2), _matrix(7)],
    ),
    "colbert_kd_scores": (
        scores.colbert_kd_scores,
        lambda: [_matrix(4) for _ in range(3)],
        lambda: [_group() for _ in range(3)],
    ),
    "ColBERTScores": (
        scores.ColBERTScores(),
        lambda: [_matrix(4) for _ in range(3)],
        lambda: [_group() for _ in range(3)],
    ),
    "XTRScores": (
        scores.XTRScores(k=4),
        lambda: [_matrix(4) for _ in range(3)],
        lambda: [_group() for _ in range(3)],
    ),
    "XTRKDScores": (
        scores.XTRKDScores(k=4),
        lambda: [_matrix(4) for _ in range(3)],
        lambda: [_group() for _ in range(3)],
    ),
}


def _nan(item):
    bad = item.copy()
    bad.flat[3] = np.nan
    return bad


def _inf(item):
    bad = item.copy()
    bad.flat[-1] = -np.inf
    return bad


BAD_ITEMS = {
    # name: (make bad item from a good one, error type, words in the message)
    "nan": (_nan, ValueError, "finite"),
    "inf": (_inf, ValueError, "finite"),
    "extra-dimension": (lambda item: item[None], ValueError, "got shape (1, "),
    "string": (lambda item: "not an embedding", TypeError, "numbers"),
    "none": (lambda item: None, TypeError, "NoneType"),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("argument", ["queries_embeddings", "documents_embeddings"])
@pytest.mark.parametrize("bad", sorted(BAD_ITEMS))
def test_bad_item_names_argument_and_position(entry, argument, bad):
    call, make_queries, make_documents = ENTRY_POINTS[entry]
    queries, documents = make_queries(), make_documents()
    make_bad, error, words = BAD_ITEMS[bad]
    items = queries if argument == "queries_embeddings" else documents
    items[1] = make_bad(items[1])
    with pytest.raises(error) as caught:
        call(queries, documents)
    message = str(caught.value)
    assert f"{argument}[1]" in message, message
    assert words in message, message


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_good_items_still_score(entry):
    call, make_queries, make_documents = ENTRY_POINTS[entry]
    result = call(make_queries(), make_documents())
    assert torch.isfinite(result).all()
    assert result.shape[0] == 3


@pytest.mark.parametrize(
    "entry", ["colbert_scores", "colbert_kd_scores", "ColBERTScores", "XTRScores"]
)
@pytest.mark.parametrize("argument", ["queries_embeddings", "documents_embeddings"])
def test_whole_argument_of_wrong_kind(entry, argument):
    call, make_queries, make_documents = ENTRY_POINTS[entry]
    queries, documents = make_queries(), make_documents()
    for bad in (None, "text", np.zeros((3, 4, H), dtype=bool)):
        args = {"queries_embeddings": queries, "documents_embeddings": documents}
        args[argument] = bad
        with pytest.raises(TypeError, match=argument):
            call(args["queries_embeddings"], args["documents_embeddings"])


def test_nan_in_stacked_tensor_names_the_item():
    queries = torch.from_numpy(_group(n=4, rows=3))
    queries[2, 1, 0] = float("nan")
    documents = torch.from_numpy(_group(n=2, rows=5))
    with pytest.raises(ValueError, match=r"queries_embeddings\[2\] must hold finite"):
        scores.colbert_scores(queries, documents)


def test_tensors_in_a_training_graph_are_not_checked():
    """Inside a training step (requires_grad) NaNs propagate as in PyLate."""
    queries = torch.from_numpy(_group(n=2, rows=3)).requires_grad_()
    with torch.no_grad():
        queries[0, 0, 0] = float("nan")
    documents = torch.from_numpy(_group(n=2, rows=5))
    result = scores.colbert_scores(queries, documents)
    assert torch.isnan(result[0]).all() and torch.isfinite(result[1]).all()


def test_as_matrices_squeezes_one_item_batch_and_quotes_ids():
    good = [_matrix(3), _matrix(4)[None]]
    out = as_matrices(good, "documents_embeddings", dim=H)
    assert [m.shape for m in out] == [(3, H), (4, H)]
    bad = [_matrix(3), _nan(_matrix(4))]
    with pytest.raises(
        ValueError, match=r"documents_embeddings\[1\] \(document id 'b'\)"
    ):
        as_matrices(bad, "documents_embeddings", ids=["a", "b"])
    with pytest.raises(ValueError, match=r"\[0\] has dimension 8, expected 4"):
        as_matrices([_matrix(3)], "documents_embeddings", dim=4)
    with pytest.raises(ValueError, match=r"\[1\] must be a 2-D"):
        as_matrices([_matrix(3), _group()], "documents_embeddings")
    with pytest.raises(TypeError, match=r"documents_embeddings\[0\] must be a matrix"):
        as_matrices([["a", "b"]], "documents_embeddings")
    with pytest.raises(ValueError, match="must be a 3-D"):
        as_matrices(_matrix(3), "queries_embeddings", allow_single=False)


def test_as_matrices_nonempty_refuses_what_an_index_cannot_hold():
    assert as_matrices([], "documents_embeddings") == []
    with pytest.raises(ValueError, match="documents_embeddings is empty"):
        as_matrices([], "documents_embeddings", nonempty=True)
    empty_item = [_matrix(2), np.zeros((0, H), dtype=np.float32)]
    with pytest.raises(ValueError, match=r"\[1\] \(document id 7\) has no token"):
        as_matrices(empty_item, "documents_embeddings", nonempty=True, ids=[3, 7])


def test_check_finite_on_a_concatenation_names_item_and_token():
    tokens = np.concatenate([_matrix(3), _matrix(4), _matrix(2)])
    tokens[5, 2] = np.inf
    with pytest.raises(ValueError, match=r"embeddings\[1\] \(token 2\)"):
        check_finite(tokens, "embeddings", offsets=[0, 3, 7, 9])
    check_finite(np.full((2, 2), 3e38, dtype=np.float32), "large but finite")


def test_as_tensor_pads_ragged_lists_like_convert_to_tensor():
    tensor = as_tensor([_matrix(2), _matrix(4)], "documents_embeddings", 3)
    assert tensor.shape == (2, 4, H)
    assert float(tensor[0, 2:].abs().sum()) == 0.0


@pytest.mark.parametrize("value", [0, -2, 1.5, True, None, "3"])
def test_check_int_one_message(value):
    with pytest.raises(ValueError, match=r"^batch_size must be an integer >= 1, got"):
        check_int("batch_size", value)
    assert check_int("batch_size", None, allow_none=True) is None
    assert check_int("batch_size", np.int64(4)) == 4


def _rerank_inputs():
    queries = [_matrix(4) for _ in range(3)]
    documents = [[_matrix(6), _matrix(3), _matrix(5)] for _ in range(3)]
    ids = [["a", "b", "c"] for _ in range(3)]
    return ids, queries, documents


@pytest.mark.parametrize("argument", ["queries_embeddings", "documents_embeddings"])
@pytest.mark.parametrize("bad", sorted(BAD_ITEMS))
def test_rerank_names_argument_and_position(argument, bad):
    from pylate_clone import rank

    ids, queries, documents = _rerank_inputs()
    make_bad, error, words = BAD_ITEMS[bad]
    if argument == "queries_embeddings":
        queries[1] = make_bad(queries[1])
        position = "queries_embeddings[1]"
    else:
        documents[1][2] = make_bad(documents[1][2])
        # Shape and kind errors name the document; NaN / inf name the query's list.
        position = (
            "documents_embeddings[1]"
            if bad in ("nan", "inf")
            else "documents_embeddings[1][2]"
        )
    with pytest.raises(error) as caught:
        rank.rerank(ids, queries, documents)
    message = str(caught.value)
    assert position in message, message
    assert words in message, message


def test_rerank_good_inputs_still_rank():
    from pylate_clone import rank

    ids, queries, documents = _rerank_inputs()
    ranked = rank.rerank(ids, queries, documents)

    def maxsim(q, d, longest):
        # PyLate's rerank zero-pads candidates to the longest one (no mask).
        sims = d @ q.T
        if len(d) < longest:
            sims = np.vstack([sims, np.zeros((1, len(q)), dtype=sims.dtype)])
        return sims.max(0).sum()

    expected = [
        sorted(
            zip(
                ["a", "b", "c"],
                [maxsim(q, d, max(len(x) for x in docs)) for d in docs],
            ),
            key=lambda pair: -pair[1],
        )
        for q, docs in zip(queries, documents)
    ]
    for got, want in zip(ranked, expected):
        assert [r["id"] for r in got] == [w[0] for w in want]
        np.testing.assert_allclose(
            [r["score"] for r in got], [w[1] for w in want], rtol=1e-5
        )


def test_is_plain_matrix_is_check_matrix_fast_path():
    plain = [_matrix(3), torch.from_numpy(_matrix(3)), _matrix(0).astype(np.float16)]
    for value in plain:
        assert is_plain_matrix(value, H)
        assert check_matrix(value, "x", H, squeeze=False) is value
    # Everything else goes through check_matrix (converted, or a named error).
    others = [
        _matrix(3).tolist(),  # a nested list: converted by check_matrix
        _matrix(3).astype(np.int64),  # numbers, but not float: checked fully
        _matrix(3)[None],  # 3-D
        _matrix(3)[:, :2],  # another dimension
        torch.ones(3, H, dtype=torch.bool),
        None,
    ]
    assert not any(is_plain_matrix(value, H) for value in others)


@pytest.mark.parametrize("entry", ["ColBERTScores", "XTRScores", "XTRKDScores"])
def test_group_scorers_check_the_documents_mask_shape(entry):
    # Both group scorers read their inputs through scores/_groups.py: a mask
    # that does not match the (Qd, N, T) documents is refused by name.
    call, make_queries, make_documents = ENTRY_POINTS[entry]
    queries, documents = make_queries(), make_documents()
    groups, n, t = len(documents), *documents[0].shape[:2]
    ones = np.ones((groups, n, t), dtype=np.float32)
    assert torch.allclose(
        call(queries, documents, documents_mask=ones), call(queries, documents)
    )
    with pytest.raises(ValueError, match=r"documents_mask must have shape \(3, 2, 5\)"):
        call(queries, documents, documents_mask=np.ones((groups, n, t + 1)))


def test_rerank_names_a_missing_input():
    import pytest

    from pylate_clone import rank

    with pytest.raises(TypeError, match="queries_embeddings"):
        rank.rerank(
            documents_ids=[["a"]],
            queries_embeddings=None,
            documents_embeddings=[[np.ones((2, 4), dtype=np.float32)]],
        )


def test_convert_to_tensor_float64_rows_are_float32_as_in_pylate():
    from pylate_clone.utils import convert_to_tensor

    rows = [np.array([1.0, 1.0, 1.0])]
    assert convert_to_tensor(rows).dtype == torch.float32
    assert convert_to_tensor([[1.0, 1.0, 1.0]]).dtype == torch.float32
    assert convert_to_tensor([torch.ones(2, dtype=torch.float64)]).dtype == (
        torch.float64
    )
