"""Sharding without a cluster: routing, the sharded manifest, all-or-nothing shard writes."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

pytest.importorskip("ray", reason="the ray extra (in .[dev]) is needed")

from pylate_clone import indexes  # noqa: E402
from pylate_clone.distributed import _layout, _writer, shard_of  # noqa: E402


def _docs(rng: np.random.Generator, ids: list[str]) -> list[np.ndarray]:
    return [rng.standard_normal((3, 8)).astype(np.float32) for _ in ids]


def test_shard_of_is_crc32_of_the_id_string() -> None:
    assert shard_of("abc", 4) == zlib.crc32(b"abc") % 4 == 2
    assert shard_of(17, 5) == shard_of("17", 5) == zlib.crc32(b"17") % 5
    assert shard_of(np.int64(17), 5) == shard_of(17, 5)
    counts = np.bincount([shard_of(f"doc{i}", 4) for i in range(4000)], minlength=4)
    # A hash that spreads: every shard within 10% of a quarter.
    assert counts.min() > 900 and counts.max() < 1100
    with pytest.raises(TypeError, match="str or int"):
        shard_of(1.5, 4)


def test_manifest_commit_read_and_errors(tmp_path) -> None:
    with pytest.raises(_layout.ShardedLayoutError, match="no sharded index"):
        _layout.read_manifest(tmp_path, "missing")
    names = _layout.shard_names(3, 2)
    assert names == ["g0003-s000", "g0003-s001"]
    root = tmp_path / "sh"
    for name in [*names, "g0002-s000"]:
        (root / name).mkdir(parents=True)
    with pytest.raises(_layout.ShardedLayoutError, match="no sharded index"):
        _layout.read_manifest(tmp_path, "sh")
    _layout.commit_manifest(tmp_path, "sh", 3, "exact", names)
    manifest = _layout.read_manifest(tmp_path, "sh")
    assert manifest["shards"] == names and manifest["generation"] == 3
    assert _layout.is_sharded(tmp_path, "sh")
    assert _layout.shard_kind(tmp_path, "sh") == "exact"
    _layout.remove_unlisted(tmp_path, "sh")
    assert sorted(p.name for p in root.iterdir()) == [*names, "manifest.json"]
    (root / names[1]).rmdir()
    with pytest.raises(_layout.ShardedLayoutError, match="g0003-s001.*missing"):
        _layout.read_manifest(tmp_path, "sh")
    (root / "manifest.json").write_text(json.dumps({"kind": "plaid"}))
    assert not _layout.is_sharded(tmp_path, "sh")
    assert _layout.shard_kind(tmp_path, "sh") is None
    with pytest.raises(ValueError, match="kind must be one of exact, plaid"):
        _layout.check_shard_kind("voyager")


def _shards(tmp_path, count: int, rng) -> list[indexes.Exact]:
    opened = []
    for number in range(count):
        index = indexes.Exact(
            index_folder=tmp_path, index_name=f"s{number}", show_progress=False
        )
        index.add_documents([f"old{number}"], _docs(rng, ["x"]))
        opened.append(index)
    return opened


def test_write_sharded_routes_every_document(tmp_path) -> None:
    rng = np.random.default_rng(0)
    shards = _shards(tmp_path, 3, rng)
    ids = [f"d{i}" for i in range(40)]
    matrices = _docs(rng, ids)
    batches = [(ids[i : i + 7], matrices[i : i + 7]) for i in range(0, 40, 7)]
    counts = _writer.write_sharded(shards, iter(batches))
    assert sum(counts) == 40
    for number, index in enumerate(shards):
        mine = [d for d in ids if shard_of(d, 3) == number]
        assert counts[number] == len(mine)
        assert sorted(index.documents_ids) == sorted([f"old{number}", *mine])
        stored = index.get_documents_embeddings([mine])[0]
        for document_id, matrix in zip(mine, stored):
            np.testing.assert_allclose(
                matrix, matrices[ids.index(document_id)], atol=2e-3
            )
        assert index.num_segments == 2  # the old document + one transaction


def test_write_sharded_failure_commits_no_shard(tmp_path) -> None:
    rng = np.random.default_rng(1)
    shards = _shards(tmp_path, 3, rng)
    ids = [f"d{i}" for i in range(30)]
    matrices = _docs(rng, ids)

    def broken():
        yield ids[:10], matrices[:10]
        yield ids[10:20], matrices[10:20]
        raise ConnectionError("worker node lost")

    with pytest.raises(ConnectionError, match="worker node lost"):
        _writer.write_sharded(shards, broken())
    for number in range(3):
        # Reopened from disk: the last committed state, no staging left.
        index = indexes.Exact(
            index_folder=tmp_path, index_name=f"s{number}", show_progress=False
        )
        assert index.documents_ids == [f"old{number}"]
        assert not [p for p in (tmp_path / f"s{number}").iterdir() if "tmp-" in p.name]


def test_write_sharded_bad_batch_in_one_shard_aborts_all(tmp_path) -> None:
    rng = np.random.default_rng(2)
    shards = _shards(tmp_path, 2, rng)
    good = [f"g{i}" for i in range(12)]
    bad = rng.standard_normal((3, 5)).astype(np.float32)  # wrong dimension
    target = next(f"b{i}" for i in range(100) if shard_of(f"b{i}", 2) == 1)
    batches = [(good, _docs(rng, good)), ([target], [bad])]
    with pytest.raises(ValueError, match="dimension|8"):
        _writer.write_sharded(shards, iter(batches))
    for number in range(2):
        index = indexes.Exact(
            index_folder=tmp_path, index_name=f"s{number}", show_progress=False
        )
        assert index.documents_ids == [f"old{number}"]


def test_write_sharded_leaves_a_shard_without_documents_empty(tmp_path) -> None:
    rng = np.random.default_rng(3)
    shards = [
        indexes.Exact(index_folder=tmp_path, index_name=f"e{n}", show_progress=False)
        for n in range(2)
    ]
    only = next(f"x{i}" for i in range(100) if shard_of(f"x{i}", 2) == 0)
    assert _writer.write_sharded(shards, iter([([only], _docs(rng, [only]))])) == [
        1,
        0,
    ]
    assert shards[0].documents_ids == [only] and len(shards[1]) == 0
