"""PLAID on compressed segments: nbits, the numba and torch paths, the IVF path, bytes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pylate_clone import indexes, retrieve
from pylate_clone.indexes.engine import search
from tests.test_indexes import exact

DIM = 32


def clustered_docs(count, seed, length=(60, 140)):
    """Unit token vectors around shared topics, as contextual embeddings cluster."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((64, DIM))
    docs = []
    for _ in range(count):
        n = int(rng.integers(*length))
        own = topics[rng.integers(0, 64, 3)]
        x = own[rng.integers(0, 3, n)] + 0.5 * rng.standard_normal((n, DIM))
        docs.append((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32))
    return docs


@pytest.fixture(scope="module")
def collection():
    # > 100k tokens: the IVF path, not the exact scan (search.prefer_exact)
    docs = clustered_docs(1100, seed=3)
    assert not search.prefer_exact(sum(len(d) for d in docs))
    queries = [d[:24] + 0.1 for d in docs[::100]]
    queries = [q / np.linalg.norm(q, axis=1, keepdims=True) for q in queries]
    return [f"p{i}" for i in range(len(docs))], docs, queries


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@pytest.mark.parametrize("bad", [8, 3, 0])
def test_plaid_refuses_nbits_it_cannot_store(bad, tmp_path):
    with pytest.raises(ValueError, match="nbits must be one of"):
        indexes.PLAID(index_folder=tmp_path, nbits=bad)


def test_plaid_refuses_an_unknown_device(tmp_path):
    with pytest.raises(ValueError, match="device must be None or a torch device"):
        indexes.PLAID(index_folder=tmp_path, device="warp-drive")


@pytest.mark.slow
def test_numba_and_torch_paths_agree_on_the_ivf_path(collection, tmp_path):
    ids, docs, queries = collection
    results = {}
    for device in (None, "cpu"):
        # The paths rank candidates differently (numba: the token stage;
        # torch: centroid codes), so both re-score every candidate the probe
        # reaches (the same set): the scores must then agree.
        index = indexes.PLAID(
            index_folder=tmp_path / str(device), device=device, show_progress=False,
            n_full_scores=len(ids),
        )  # fmt: skip
        index.add_documents(ids, docs)
        results[device] = index(queries, k=10)
    for a, b in zip(results[None], results["cpu"]):
        assert [r["id"] for r in a] == [r["id"] for r in b]
        np.testing.assert_allclose(
            [r["score"] for r in a], [r["score"] for r in b], rtol=1e-5
        )
    # each pseudo query (a prefix of a document, perturbed) finds its document
    assert [r[0]["id"] for r in results[None]] == ids[::100]


@pytest.mark.slow
@pytest.mark.parametrize("nbits, overlap", [(4, 9.0), (2, 8.0)])
def test_bytes_per_token_and_agreement_with_exact(collection, tmp_path, nbits, overlap):
    ids, docs, queries = collection
    index = indexes.PLAID(index_folder=tmp_path, nbits=nbits, show_progress=False)
    index.add_documents(ids, docs)
    tokens = sum(len(d) for d in docs)
    # whole folder, dimension 32: 2 (code) + 2 (gain) + 32 * nbits / 8 + lists
    per_token = _folder_bytes(tmp_path) / tokens
    assert 4 + DIM * nbits / 8 < per_token < 4 + DIM * nbits / 8 + 6, per_token
    manifest = json.loads((tmp_path / "colbert" / "manifest.json").read_text())
    assert manifest["version"] == 3 and manifest["params"]["nbits"] == nbits
    assert manifest["params"]["normalize"] is True  # unit tokens detected
    got = retrieve.ColBERT(index=index).retrieve(queries, k=10)
    ref = exact(ids, docs, queries, k=10)
    shared = [
        len({r["id"] for r in g} & {r["id"] for r in e}) for g, e in zip(got, ref)
    ]
    assert np.mean(shared) >= overlap, shared
