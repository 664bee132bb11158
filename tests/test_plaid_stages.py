"""PLAID's staged search: IVF pool -> centroid-code MaxSim -> decoded re-scoring."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from pylate_clone import indexes
from pylate_clone.indexes.engine import (
    centroid_stage,
    codec,
    compressed,
    ivf,
    search,
)
from pylate_clone.indexes.segmented.views import segment_view
from tests.test_plaid_codes import clustered_docs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    # > 100k tokens, so the index takes the IVF path (search.prefer_exact)
    docs = clustered_docs(1000, seed=11)
    ids = [f"d{i}" for i in range(len(docs))]
    index = indexes.PLAID(
        index_folder=tmp_path_factory.mktemp("stages"), show_progress=False
    )
    index.add_documents(ids, docs)
    rng = np.random.default_rng(5)
    queries = []
    for j in rng.choice(len(docs), 24, replace=False):
        q = docs[j][:20] + 0.15 * rng.standard_normal((min(20, len(docs[j])), 32))
        queries.append((q / np.linalg.norm(q, axis=1, keepdims=True)).astype("f4"))
    # These tests are about the centroid-code stage (the torch path's, and
    # the CPU one's before the token stage): the view without token lists.
    view = dataclasses.replace(segment_view(index._segments[0]), token_lists=None)
    return index, ids, docs, queries, view


def _query_scores(index, queries):
    return [q @ index._centroids.T for q in queries]


def test_centroid_scores_are_the_max_of_each_tokens_centroid_score(built):
    index, _, _, queries, view = built
    scores = _query_scores(index, queries[:5])
    rng = np.random.default_rng(0)
    rows = [np.sort(rng.choice(view.num_docs, 40, replace=False)) for _ in scores]
    table = centroid_stage.CentroidTable.build(scores)
    got = centroid_stage.maxsim_centroids(table, view.codes, view.offsets, rows)
    on_torch = centroid_stage.maxsim_centroids_torch(
        [torch.from_numpy(s) for s in scores],
        torch.from_numpy(view.codes.astype(np.int64)),
        view.offsets,
        rows,
    )
    codes, offsets = np.asarray(view.codes), view.offsets
    for s, r, g, t in zip(scores, rows, got, on_torch):
        want = [s[:, codes[offsets[d] : offsets[d + 1]]].max(axis=1).sum() for d in r]
        np.testing.assert_allclose(g, want, rtol=1e-6)
        np.testing.assert_allclose(t, want, rtol=1e-6)
    # a centroid is not the token: the approximation is below 1 per query token
    # on average but close (unit tokens, cosine of a token to its centroid)
    full = compressed.maxsim_codes(
        queries[:5], index._scoring_book(), view.codes, view.packed, view.gains,
        view.offsets, rows,
    )  # fmt: skip
    gap = np.concatenate([f - g for f, g in zip(full, got)]) / 20
    assert 0.0 < np.mean(gap) < 0.25, np.mean(gap)


def test_staged_search_keeps_the_top_10_of_rescoring_every_candidate(built):
    index, _, _, queries, view = built
    args = (queries, index._centroids, [view], 10, 8)
    book = index._scoring_book()
    staged = search.search(*args, 64, book=book)
    every = search.search(*args, view.num_docs, book=book, n_centroid_scores=0)
    same = [[r for _, r, _ in a] == [r for _, r, _ in b] for a, b in zip(staged, every)]
    assert np.mean(same) == 1.0, same
    for a, b in zip(staged, every):
        np.testing.assert_allclose([v for *_, v in a], [v for *_, v in b], rtol=1e-6)


def count_decoded(monkeypatch) -> list[int]:
    """Patch ``search.score_rows`` to record each query's re-scored row count."""
    seen: list[int] = []
    real = search.score_rows

    def counting(qs, segment, rows, book=None, query_scores=None):
        seen.extend(len(r) for r in rows)
        return real(qs, segment, rows, book, query_scores)

    monkeypatch.setattr(search, "score_rows", counting)
    return seen


def test_only_n_full_scores_candidates_are_decoded(built, monkeypatch):
    index, _, _, queries, view = built
    seen = count_decoded(monkeypatch)
    search.search(
        queries, index._centroids, [view], 10, 8, 50, book=index._scoring_book()
    )
    assert seen == [50] * len(queries)
    seen.clear()
    # without the centroid stage the probe's pool goes straight to decoding
    search.search(
        queries, index._centroids, [view], 10, 8, 400,
        book=index._scoring_book(), n_centroid_scores=0,
    )  # fmt: skip
    reached = [
        len(
            ivf.probe(q @ index._centroids.T, view.indptr, view.docs, view.num_docs, 8)[
                0
            ]
        )
        for q in queries
    ]
    assert seen == reached and min(reached) > 100, reached


def test_one_query_is_cut_into_a_task_per_worker_never_inside_a_row():
    sizes = np.full(300, 150)
    rows = np.repeat(np.arange(150), 2)
    bounds = compressed._task_bounds(sizes, 2, same=rows)
    assert len(bounds) == 3 and bounds[0] == 0 and bounds[-1] == 300
    assert all(rows[b] != rows[b - 1] for b in bounds[1:-1])
    # big work: tasks of at most _TASK_TOKENS
    big = compressed._task_bounds(np.full(4000, 160), 2)
    assert len(big) - 1 == -(-4000 * 160 // compressed._TASK_TOKENS)


def test_reusing_the_centroid_scores_equals_the_full_decode(built):
    index, _, _, queries, view = built
    book = index._scoring_book()
    assert view.scales is not None and view.scales.shape == view.codes.shape
    # the scales are 1 / |c + g w| of the unnormalised reconstruction
    plain = codec.Codec.from_array(book.codec.to_array(), book.codec.nbits, False)
    raw = codec.decompress(
        view.codes[:500], view.packed[:500], view.gains[:500], index._centroids, plain
    )
    np.testing.assert_allclose(
        view.scales[:500], 1 / np.linalg.norm(raw, axis=1), rtol=1e-5
    )
    rng = np.random.default_rng(1)
    rows = [rng.integers(0, view.num_docs, 30) for _ in queries[:6]]
    args = (queries[:6], book, view.codes, view.packed, view.gains, view.offsets, rows)
    full = compressed.maxsim_codes(*args)
    reused = compressed.maxsim_codes(
        *args, scales=view.scales, query_scores=_query_scores(index, queries[:6])
    )
    for a, b in zip(full, reused):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_probe", [1, 8])
def test_numba_probe_equals_the_numpy_expansion(built, monkeypatch, n_probe):
    index, _, _, queries, view = built
    for scores in _query_scores(index, queries[:4]):
        args = (scores, view.indptr, view.docs, view.num_docs, n_probe)
        rows, approx = ivf.probe(*args)
        monkeypatch.setattr(ivf, "_jit_expand", None)
        want_rows, want_approx = ivf.probe(*args)
        monkeypatch.undo()
        assert len(rows) > 10
        np.testing.assert_array_equal(rows, want_rows)
        np.testing.assert_allclose(approx, want_approx, rtol=1e-5, atol=1e-5)
