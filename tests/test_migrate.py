"""Migration of index folders written by the real PyLate 1.6.0.

``../shared/fixtures/pylate-indexes`` holds a Voyager and a PLAID folder PyLate
1.6.0 wrote (40 documents, 2 added later, 2 removed) and the top-10 PyLate's
``retrieve.ColBERT`` returned for 3 queries (``expected.json``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES

from pylate_clone import indexes, rank, retrieve
from pylate_clone.indexes.compat.pylate_folders import read_plaid, read_voyager
from pylate_clone.indexes.migrate import describe_pylate_folder

SOURCE = FIXTURES / "pylate-indexes"


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((SOURCE / "expected.json").read_text())


@pytest.fixture(scope="module")
def queries() -> list[np.ndarray]:
    vectors = np.load(SOURCE / "vectors.npz", allow_pickle=False)
    return [vectors[f"query_{i}"] for i in range(3)]


def copy_folder(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(SOURCE / name, target, copy_function=shutil.copyfile)
    for root, dirs, _ in os.walk(target):
        for d in dirs:
            os.chmod(Path(root) / d, 0o755)
    os.chmod(target, 0o755)
    return target


def test_voyager_folder_reads_exact_vectors() -> None:
    ids, matrices, params = read_voyager(SOURCE / "voyager-index", trust_pickle=True)
    vectors = np.load(SOURCE / "vectors.npz", allow_pickle=False)
    assert "doc-3" not in ids and "doc-late-1" in ids and len(ids) == 40
    # Voyager's cosine space re-normalises stored vectors: float32 rounding only.
    np.testing.assert_allclose(
        matrices[ids.index("doc-5")], vectors["doc_5"], rtol=0, atol=1e-6
    )
    assert params == {"embedding_size": 128, "M": 64, "ef_construction": 200}


def test_plaid_decompression_reproduces_pylate_ranking(expected, queries) -> None:
    # Exact MaxSim over the decompressed vectors = what fast-plaid scored.
    ids, matrices, params = read_plaid(SOURCE / "plaid-index", trust_pickle=True)
    assert params["nbits"] == 4 and len(ids) == 40
    ranked = rank.rerank([ids] * 3, queries, [matrices] * 3)
    for got, want in zip(ranked, expected["plaid"]):
        assert [r["id"] for r in got[:10]] == [r["id"] for r in want]
        np.testing.assert_allclose(
            [r["score"] for r in got[:10]], [r["score"] for r in want], atol=2e-3
        )


def test_pickle_needs_explicit_trust(tmp_path) -> None:
    folder = copy_folder("voyager-index", tmp_path)
    with pytest.raises(ValueError, match="trust_pickle=True"):
        indexes.migrate_pylate_index(folder)
    with pytest.raises(ValueError, match="trust_pickle"):
        read_plaid(SOURCE / "plaid-index", trust_pickle=False)
    assert sorted(os.listdir(folder)) == sorted(os.listdir(SOURCE / "voyager-index"))


def test_describe_pylate_folder_names_the_fix(tmp_path) -> None:
    message = describe_pylate_folder(SOURCE / "plaid-index")
    assert "migrate_pylate_index" in message and "trust_pickle=True" in message
    assert "PLAID" in message.upper()
    assert describe_pylate_folder(tmp_path) is None


def test_voyager_migration_returns_pylate_results(tmp_path, expected, queries) -> None:
    folder = copy_folder("voyager-index", tmp_path)
    index = indexes.migrate_pylate_index(folder, trust_pickle=True, show_progress=False)
    assert (tmp_path / "voyager-index.pylate-backup" / "index.voyager").is_file()
    assert not list(folder.rglob("*.pkl"))
    assert len(index) == 40 and "doc-17" not in index
    results = retrieve.ColBERT(index=index).retrieve(queries, k=10)
    for got, want in zip(results, expected["voyager"]):
        assert [r["id"] for r in got] == [r["id"] for r in want]
        np.testing.assert_allclose(
            [r["score"] for r in got], [r["score"] for r in want], atol=2e-3
        )  # our Voyager re-scores from its float16 store
    with pytest.raises(ValueError, match="not a PyLate 1.6"):
        indexes.migrate_pylate_index(folder, trust_pickle=True)


@pytest.fixture(scope="module")
def migrated_plaid(tmp_path_factory, queries) -> tuple[Path, list]:
    tmp_path = tmp_path_factory.mktemp("plaid")
    folder = copy_folder("plaid-index", tmp_path)
    index = indexes.migrate_pylate_index(folder, trust_pickle=True, show_progress=False)
    assert (tmp_path / "plaid-index.pylate-backup" / "fast_plaid_index").is_dir()
    assert len(index) == 40 and "doc-late-0" in index and "doc-3" not in index
    return folder, retrieve.ColBERT(index=index).retrieve(queries, k=10)


def test_plaid_migration_keeps_documents_and_top_results(migrated_plaid, expected):
    # The migrated PLAID stores PyLate's vectors re-compressed (4 bits): the
    # fixture's ten best scores lie within ~0.3 of each other: near-ties swap.
    folder, results = migrated_plaid
    assert not list(folder.rglob("*.pkl"))
    for got, want in zip(results, expected["plaid"]):
        ours, theirs = [r["id"] for r in got], [r["id"] for r in want]
        assert theirs[0] in ours[:4]
        assert len(set(ours) & set(theirs)) >= 9


def test_plaid_migration_scores_stay_close_to_pylate(migrated_plaid, expected):
    _, results = migrated_plaid
    for got, want in zip(results, expected["plaid"]):
        theirs = {r["id"]: r["score"] for r in want}
        shared = [r for r in got if r["id"] in theirs]
        # relative error of each shared document's score (measured: max 1.4%, mean 0.8%)
        errors = [abs(r["score"] / theirs[r["id"]] - 1) for r in shared]
        assert max(errors) < 0.02 and np.mean(errors) < 0.01, errors


def test_failed_build_leaves_the_pylate_folder_untouched(tmp_path, monkeypatch):
    folder = copy_folder("voyager-index", tmp_path)
    before = sorted(os.listdir(folder))

    def broken(self, *args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(indexes.Voyager, "add_documents", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        indexes.migrate_pylate_index(folder, trust_pickle=True, show_progress=False)
    assert sorted(os.listdir(folder)) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voyager-index"]


def test_migration_killed_between_renames_is_finished_by_a_rerun(
    tmp_path, expected, queries
):
    folder = copy_folder("voyager-index", tmp_path)
    index = indexes.migrate_pylate_index(folder, trust_pickle=True, show_progress=False)
    del index
    # Recreate the state after the first rename: original moved to the backup,
    # the new index still under its staging name.
    os.rename(folder, tmp_path / "voyager-index.migrating-deadbeef")
    index = indexes.migrate_pylate_index(folder, trust_pickle=True, show_progress=False)
    assert not (tmp_path / "voyager-index.migrating-deadbeef").exists()
    results = retrieve.ColBERT(index=index).retrieve(queries[:1], k=10)
    assert [r["id"] for r in results[0]] == [r["id"] for r in expected["voyager"][0]]
