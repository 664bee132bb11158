"""PLAID's token stage: exact scores of the probed centroids' tokens, imputed rest."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pylate_clone import indexes
from pylate_clone.indexes.engine import codec, search, token_stage
from pylate_clone.indexes.segmented.views import segment_view
from tests.test_plaid_codes import clustered_docs
from tests.test_plaid_stages import count_decoded


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    docs = clustered_docs(600, seed=21)
    index = indexes.PLAID(
        index_folder=tmp_path_factory.mktemp("tokens"), show_progress=False
    )
    index.add_documents([f"d{i}" for i in range(len(docs))], docs)
    rng = np.random.default_rng(3)
    queries = []
    for j in rng.choice(len(docs), 12, replace=False):
        q = docs[j][:16] + 0.1 * rng.standard_normal((min(16, len(docs[j])), 32))
        queries.append((q / np.linalg.norm(q, axis=1, keepdims=True)).astype("f4"))
    view = segment_view(index._segments[0])
    return index, docs, queries, view


def _brute_force(index, view, query, probes, imputed, keep=None):
    """Per document with a token in a probed centroid: sum of max(best, imputed)."""
    tokens = codec.decompress(
        np.asarray(view.codes), np.asarray(view.packed), view.gains,
        index._centroids, index._codec,
    )  # fmt: skip
    codes, offsets = np.asarray(view.codes), view.offsets
    want = {}
    for d in range(view.num_docs):
        if keep is not None and not keep[d]:
            continue
        part = slice(offsets[d], offsets[d + 1])
        sims = query @ tokens[part].T
        total, reached = 0.0, False
        for i in range(len(query)):
            found = np.isin(codes[part], probes[i])
            if found.any():
                total += max(sims[i][found].max(), imputed[i])
                reached = True
            else:
                total += imputed[i]
        if reached:
            want[d] = total
    return want


def test_token_lists_hold_every_token_once_grouped_by_centroid(built):
    index, _, _, view = built
    lists = view.token_lists
    codes = np.asarray(view.codes)
    assert lists.starts[-1] == len(codes) and lists.packed.shape == view.packed.shape
    for c in (0, 7, len(index._centroids) - 1):
        part = slice(lists.starts[c], lists.starts[c + 1])
        owners = np.repeat(np.arange(view.num_docs), np.diff(view.offsets))
        mine = np.flatnonzero(codes == c)
        np.testing.assert_array_equal(lists.docs[part], owners[mine])
        np.testing.assert_array_equal(lists.packed[part], np.asarray(view.packed)[mine])
        np.testing.assert_array_equal(lists.scales[part], view.scales[mine])


def test_probe_tokens_gives_the_best_centroids_and_the_next_score(built):
    index, _, queries, _ = built
    scores = queries[0] @ index._centroids.T
    probes, imputed = token_stage.probe_tokens(scores, 5)
    order = np.argsort(-scores, axis=1)
    np.testing.assert_array_equal(
        np.sort(probes, axis=1), np.sort(order[:, :5], axis=1)
    )
    np.testing.assert_allclose(
        imputed, np.take_along_axis(scores, order[:, 5:6], 1)[:, 0]
    )
    everything, low = token_stage.probe_tokens(scores, 10**6)
    assert everything.shape == scores.shape and np.allclose(low, scores.min(axis=1))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_token_scores_equal_brute_force_over_reconstructed_tokens(built, threads):
    index, _, queries, view = built
    book = index._scoring_book()
    for query in queries[:3]:
        scores = query @ index._centroids.T
        probes, imputed = token_stage.probe_tokens(scores, 6)
        rows, got = token_stage.token_scores(
            query, scores, probes, imputed, view.token_lists, book.weights,
            num_threads=threads,
        )  # fmt: skip
        want = _brute_force(index, view, query, probes, imputed)
        assert rows.tolist() == sorted(want) and len(rows) > 20
        np.testing.assert_allclose(got, [want[d] for d in rows], rtol=1e-5, atol=1e-5)


def test_token_scores_skip_documents_outside_keep(built):
    index, _, queries, view = built
    book = index._scoring_book()
    query = queries[1]
    scores = query @ index._centroids.T
    probes, imputed = token_stage.probe_tokens(scores, 6)
    keep = np.zeros(view.num_docs, dtype=bool)
    keep[::3] = True
    rows, got = token_stage.token_scores(
        query, scores, probes, imputed, view.token_lists, book.weights, keep=keep
    )
    want = _brute_force(index, view, query, probes, imputed, keep)
    assert rows.tolist() == sorted(want) and np.all(rows % 3 == 0)
    np.testing.assert_allclose(got, [want[d] for d in rows], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="keep must be"):
        token_stage.token_scores(
            query, scores, probes, imputed, view.token_lists, book.weights,
            keep=keep[:-1],
        )  # fmt: skip


def test_concurrent_calls_never_share_a_scratch(built):
    index, _, queries, view = built
    book = index._scoring_book()

    def run(query):
        scores = query @ index._centroids.T
        probes, imputed = token_stage.probe_tokens(scores, 8)
        return token_stage.token_scores(
            query, scores, probes, imputed, view.token_lists, book.weights,
            num_threads=2,
        )  # fmt: skip

    alone = [run(q) for q in queries]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(run, queries * 3))
    for (rows, got), (want_rows, want) in zip(together, alone * 3):
        np.testing.assert_array_equal(rows, want_rows)
        np.testing.assert_array_equal(got, want)


def test_search_decodes_only_the_token_stages_best(built, monkeypatch):
    index, _, queries, view = built
    book = index._scoring_book()
    seen = count_decoded(monkeypatch)
    hits = search.search(queries, index._centroids, [view], 10, 8, 48, book=book)
    assert seen == [48] * len(queries) and all(len(h) == 10 for h in hits)


def test_deleted_and_filtered_rows_never_reach_the_results(built, tmp_path):
    _, docs, queries, _ = built
    index = indexes.PLAID(index_folder=tmp_path, show_progress=False)
    ids = [f"d{i}" for i in range(len(docs))]
    index.add_documents(ids, docs)
    assert index._segments[0].extra.get("token_lists") is not None
    gone = [f"d{i}" for i in range(0, len(docs), 2)]
    index.remove_documents(gone)
    view = segment_view(index._segments[0])
    allowed = [np.arange(1, view.num_docs, 4, dtype=np.int64)]
    hits = search.search(
        queries, index._centroids, [view], 10, 8, 64, allowed,
        book=index._scoring_book(),
    )  # fmt: skip
    for found in hits:
        assert found and all(r % 4 == 1 for _, r, _ in found)


def test_token_stage_and_centroid_stage_agree_with_every_candidate(built):
    """Both rankings keep the top 10 once they pass enough candidates on."""
    index, _, queries, view = built
    book = index._scoring_book()
    plain = dataclasses.replace(view, token_lists=None)
    args = (queries, index._centroids)
    every = search.search(*args, [plain], 10, 8, view.num_docs, book=book,
                          n_centroid_scores=0)  # fmt: skip
    for v in (view, plain):
        staged = search.search(*args, [v], 10, 8, 200, book=book)
        assert [[r for _, r, _ in h] for h in staged] == [
            [r for _, r, _ in h] for h in every
        ]


def test_token_scores_span_several_document_blocks(tmp_path):
    """More documents than one block of the kernel (``_tokens_jit.BLOCK``)."""
    from pylate_clone.indexes.engine._tokens_jit import BLOCK

    docs = clustered_docs(BLOCK + 700, seed=4, length=(3, 8))
    index = indexes.PLAID(index_folder=tmp_path, show_progress=False)
    index.add_documents([f"d{i}" for i in range(len(docs))], docs)
    view = segment_view(index._segments[0])
    query = docs[5][:4]
    scores = query @ index._centroids.T
    probes, imputed = token_stage.probe_tokens(scores, 4)
    want = _brute_force(index, view, query, probes, imputed)
    assert max(want) >= BLOCK and min(want) < BLOCK
    for threads in (1, 2):
        rows, got = token_stage.token_scores(
            query, scores, probes, imputed, view.token_lists,
            index._scoring_book().weights, num_threads=threads,
        )  # fmt: skip
        assert rows.tolist() == sorted(want)
        np.testing.assert_allclose(got, [want[d] for d in rows], rtol=1e-5, atol=1e-5)


def test_default_depth_grows_with_the_cube_root_for_the_token_stage():
    full = search.default_n_full_scores
    assert full(5000, 10, 4, token_stage=True) == 256
    assert full(5000 * 8, 10, 4, token_stage=True) == 512  # 8x docs: 2x depth
    assert full(5000 * 4, 10, 4) == 1280  # centroid stage: the square root
    assert full(5000, 10, 2, token_stage=True) == full(5000, 10, 2) == 1280
    assert full(100, 10, 4, token_stage=True) == 80  # at least 8 k


def test_a_filter_scans_only_subsets_smaller_than_the_rescoring():
    # unfiltered: exact below 100k tokens, as before
    assert search.prefer_exact(90_000) and not search.prefer_exact(120_000)
    # filtered on the token stage: the scan must beat 1.5x the re-scored tokens
    assert search.prefer_exact(30_000, rescored_tokens=40_000)
    assert not search.prefer_exact(81_000, rescored_tokens=40_000)
    assert search.prefer_exact(90_000, rescored_tokens=200_000)  # still capped
    assert not search.prefer_exact(150_000, rescored_tokens=200_000)
