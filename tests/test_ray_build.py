"""Ray builds on a real two-node local cluster equal one-process builds.

The cluster (``ray_cluster`` in conftest) is two ``ray start`` nodes on
127.0.0.1 with one CPU each; the model is the tiny fixture ColBERT and the
corpus the first SciFact abstracts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray", reason="the ray extra (in .[dev]) is needed")

from pylate_clone import cli, distributed, indexes, retrieve  # noqa: E402
from pylate_clone.cli.formats import read_corpus, read_queries  # noqa: E402
from pylate_clone.resources import load_model  # noqa: E402

pytestmark = pytest.mark.slow

DOCS = 160
QUERIES = 20


@pytest.fixture(scope="module")
def model_path(fixtures_dir: Path) -> str:
    return str(fixtures_dir / "models" / "tiny-colbert")


def _scifact_head(tmp_path_factory, data_dir: Path, name: str, n: int) -> Path:
    """The first ``n`` lines of SciFact's ``{name}.jsonl`` in a fresh folder."""
    lines = (data_dir / "scifact" / f"{name}.jsonl").read_text().splitlines()
    path = tmp_path_factory.mktemp(name) / f"{name}.jsonl"
    path.write_text("\n".join(lines[:n]) + "\n")
    return path


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory, data_dir: Path) -> Path:
    """The first DOCS SciFact documents as a corpus.jsonl."""
    return _scifact_head(tmp_path_factory, data_dir, "corpus", DOCS)


@pytest.fixture(scope="module")
def queries_file(tmp_path_factory, data_dir: Path) -> Path:
    return _scifact_head(tmp_path_factory, data_dir, "queries", QUERIES)


@pytest.fixture(scope="module")
def model(model_path: str):
    return load_model(model_path, quiet=True)


@pytest.fixture(scope="module")
def queries(model, queries_file: Path) -> list[np.ndarray]:
    _, texts = read_queries(queries_file)
    return model.encode(texts, is_query=True, show_progress_bar=False)


@pytest.fixture(scope="module")
def reference_exact(tmp_path_factory, model, corpus_file: Path) -> indexes.Exact:
    """The corpus encoded and indexed in this one process."""
    ids, texts = read_corpus(corpus_file)
    index = indexes.Exact(
        index_folder=tmp_path_factory.mktemp("ref"), show_progress=False
    )
    embeddings = model.encode(texts, is_query=False, batch_size=8)
    return index.add_documents(ids, embeddings)


def _assert_same_answers(got: list, expected: list, atol: float = 1e-5) -> None:
    assert len(got) == len(expected)
    for q, (mine, theirs) in enumerate(zip(got, expected)):
        assert [r["id"] for r in mine] == [r["id"] for r in theirs], f"query {q}"
        np.testing.assert_allclose(
            [r["score"] for r in mine], [r["score"] for r in theirs], atol=atol
        )


def _cli(args: list[str], env: dict, timeout: int = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pylate_clone.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_ray_build_equals_one_process_build(
    ray_cluster, tmp_path, model_path, corpus_file, queries
) -> None:
    common = ["--model", model_path, "--corpus", str(corpus_file)]
    common += ["--batch-size", "8", "--quiet"]
    one = tmp_path / "one"
    assert cli.main(["index", *common, "--index", str(one)]) == 0
    two = tmp_path / "ray"
    ray_args = ["--ray", ray_cluster.address, "--workers", "2"]
    done = _cli(["index", *common, "--index", str(two), *ray_args], ray_cluster.env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{DOCS} documents, plaid" in done.stdout
    # The same folder format: a PLAID index any process opens.
    local = indexes.PLAID(index_folder=one, show_progress=False)
    built = indexes.PLAID(index_folder=two, show_progress=False)
    assert built.documents_ids == local.documents_ids
    assert built.num_segments == 1  # one transaction
    # Same seeded codebook sample over the same token order.
    np.testing.assert_allclose(built._centroids, local._centroids, atol=1e-3)
    ids = local.documents_ids
    for mine, theirs in zip(
        built.get_documents_embeddings([ids])[0],
        local.get_documents_embeddings([ids])[0],
    ):
        # Ray's encoder and the local one differ by float rounding; PLAID stores
        # 4-bit codes, so a value on a bucket boundary can land in the next
        # bucket: a rare flip, never a different vector.
        close = np.abs(mine - theirs) <= 2e-3
        assert close.mean() >= 0.999
        np.testing.assert_allclose(mine, theirs, atol=0.05)
    _assert_same_answers(built(queries, k=10), local(queries, k=10), atol=1e-3)


def test_cli_ray_exact_build_scores_within_1e4_of_one_process(
    ray_cluster, tmp_path, model_path, corpus_file, queries, reference_exact
) -> None:
    # Without PLAID's 4-bit buckets the two encoders' rounding is all that differs.
    args = ["index", "--model", model_path, "--corpus", str(corpus_file)]
    args += ["--batch-size", "8", "--quiet", "--kind", "exact"]
    args += ["--index", str(tmp_path), "--ray", ray_cluster.address, "--workers", "2"]
    done = _cli(args, ray_cluster.env)
    assert done.returncode == 0, done.stderr[-3000:]
    built = indexes.Exact(index_folder=tmp_path, show_progress=False)
    assert built.documents_ids == reference_exact.documents_ids
    _assert_same_answers(
        built(queries, k=10), reference_exact(queries, k=10), atol=1e-4
    )


def test_sharded_build_answers_like_the_union_index(
    ray_cluster,
    tmp_path,
    model_path,
    corpus_file,
    queries,
    queries_file,
    reference_exact,
) -> None:
    sharded = distributed.build_index(
        model_path,
        corpus_file,
        tmp_path,
        "sh",
        kind="exact",
        ray_address=ray_cluster.address,
        num_workers=2,
        batch_size=8,
        shards=3,
        show_progress=False,
    )
    assert isinstance(sharded, distributed.ShardedIndex)
    assert sharded.num_shards == 3 and len(sharded) == DOCS
    assert sorted(sharded.documents_ids) == sorted(reference_exact.documents_ids)
    manifest = json.loads((tmp_path / "sh" / "manifest.json").read_text())
    assert manifest["kind"] == "sharded" and manifest["shard_kind"] == "exact"
    for number, name in enumerate(manifest["shards"]):
        shard = indexes.Exact(index_folder=tmp_path / "sh", index_name=name)
        assert shard.documents_ids  # every shard got documents
        assert {distributed.shard_of(d, 3) for d in shard.documents_ids} == {number}
    _assert_same_answers(sharded(queries, k=10), reference_exact(queries, k=10))
    # k larger than a shard, and a subset spanning shards.
    _assert_same_answers(sharded(queries, k=80), reference_exact(queries, k=80))
    subset = reference_exact.documents_ids[::7]
    _assert_same_answers(
        sharded(queries, k=5, subset=subset),
        reference_exact(queries, k=5, subset=subset),
    )
    got = retrieve.ColBERT(index=sharded).retrieve(queries, k=10)
    _assert_same_answers(got, reference_exact(queries, k=10))
    # The command line's search opens the sharded folder like any index.
    run = tmp_path / "run.trec"
    args = ["search", "--model", model_path, "--index", str(tmp_path)]
    args += ["--index-name", "sh", "--queries", str(queries_file)]
    args += ["--output", str(run), "--ray", ray_cluster.address, "--quiet"]
    assert cli.main(args) == 0
    query_ids, _ = read_queries(queries_file)
    expected = reference_exact(queries, k=10)
    lines = run.read_text().split("\n")
    first = lines[0].split()
    assert first[0] == query_ids[0] and first[2] == expected[0][0]["id"]
    sharded.close()


@pytest.fixture
def sharded_copy(ray_cluster, tmp_path, model_path, corpus_file):
    """A 2-shard exact index built on the cluster (fresh for each test)."""
    index = distributed.build_index(
        model_path,
        corpus_file,
        tmp_path,
        "routed",
        kind="exact",
        ray_address=ray_cluster.address,
        batch_size=16,
        shards=2,
        show_progress=False,
    )
    yield index
    index.close()


def test_sharded_writes_are_routed_and_shard_death_is_named(
    ray_cluster, sharded_copy, tmp_path, queries
) -> None:
    index = sharded_copy
    rng = np.random.default_rng(0)
    dim = queries[0].shape[1]
    new_ids = [f"new-{i}" for i in range(6)]
    new = [rng.standard_normal((5, dim)).astype(np.float32) for _ in new_ids]
    index.add_documents(new_ids, new)
    assert len(index) == DOCS + 6
    manifest = json.loads((tmp_path / "routed" / "manifest.json").read_text())
    for number, name in enumerate(manifest["shards"]):
        on_disk = indexes.Exact(index_folder=tmp_path / "routed", index_name=name)
        mine = {d for d in new_ids if distributed.shard_of(d, 2) == number}
        assert mine <= set(on_disk.documents_ids)
        assert not (set(new_ids) - mine) & set(on_disk.documents_ids)
    # The new document is found by its own vectors, with its exact score.
    hit = index([new[3]], k=1)[0][0]
    assert hit["id"] == "new-3"
    np.testing.assert_allclose(
        index.get_documents_embeddings([["new-3"]])[0][0], new[3], atol=2e-3
    )
    assert "new-3" in index and "never-added" not in index
    index.remove_documents(["new-3", "never-added"])
    assert "new-3" not in index and len(index) == DOCS + 5
    assert index([new[3]], k=1)[0][0]["id"] != "new-3"
    with pytest.raises(KeyError, match="new-3"):
        index.get_documents_embeddings([["new-3"]])
    with pytest.raises(ValueError, match="one entry per document"):
        index.add_documents(["a", "b"], new[:1])
    # A shard whose process dies: the query names it; Ray restarts it.
    before = index(queries, k=10)
    victim = index.shard_pids()[1]
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(distributed.ShardUnavailableError, match=r"shard 1 .*routed"):
        index(queries, k=10)
    deadline = time.monotonic() + 120
    while True:
        try:
            after = index(queries, k=10)
            break
        except distributed.ShardUnavailableError:
            assert time.monotonic() < deadline, "the shard actor was not restarted"
            time.sleep(1)
    assert index.shard_pids()[1] != victim
    _assert_same_answers(after, before)


def test_killed_encoder_worker_build_finishes(
    ray_cluster, tmp_path, model_path, corpus_file, queries, reference_exact
) -> None:
    killed: list[int] = []
    stop = threading.Event()

    def kill_first_encoder() -> None:
        while not stop.is_set():
            pids = ray_cluster.worker_pids("ray::MapWorker")
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_encoder, daemon=True)
    killer.start()
    try:
        index = distributed.build_index(
            model_path,
            corpus_file,
            tmp_path,
            kind="exact",
            ray_address=ray_cluster.address,
            num_workers=2,
            batch_size=4,
            show_progress=False,
        )
    finally:
        stop.set()
        killer.join()
    assert killed, "no encoder actor was seen to kill"
    # Ray restarted the actor and re-ran its batches: a complete, equal index.
    reopened = indexes.Exact(index_folder=tmp_path, show_progress=False)
    assert reopened.documents_ids == reference_exact.documents_ids
    assert len(index) == DOCS
    _assert_same_answers(reopened(queries, k=10), reference_exact(queries, k=10))


def test_killed_build_leaves_the_last_commit(
    ray_cluster, tmp_path, model_path, corpus_file, data_dir, queries
) -> None:
    # A committed index of the first DOCS documents...
    folder = tmp_path / "index"
    common = ["--model", model_path, "--batch-size", "8", "--quiet"]
    assert (
        cli.main(
            ["index", *common, "--corpus", str(corpus_file), "--index", str(folder)]
        )
        == 0
    )
    committed = indexes.PLAID(index_folder=folder, show_progress=False)
    expected_ids = committed.documents_ids
    expected = committed(queries, k=10)
    manifest = (folder / "colbert" / "manifest.json").read_bytes()
    # ... then a Ray build adding more documents, killed while it streams.
    more = tmp_path / "more.jsonl"
    lines = (data_dir / "scifact" / "corpus.jsonl").read_text().splitlines()
    more.write_text("\n".join(lines[DOCS : DOCS + 400]) + "\n")
    args = ["index", *common, "--corpus", str(more), "--index", str(folder)]
    args += ["--ray", ray_cluster.address, "--workers", "2"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "pylate_clone.cli", *args],
        env=ray_cluster.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    try:
        # Kill once the open transaction holds streamed vectors.
        while not any(
            t.stat().st_size > 4096 for t in (folder / "colbert").glob("tmp-*/tokens*")
        ):
            assert driver.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline, "the build never started writing"
            time.sleep(0.05)
    finally:
        driver.kill()
        driver.wait()
    assert (folder / "colbert" / "manifest.json").read_bytes() == manifest
    reopened = indexes.PLAID(index_folder=folder, show_progress=False)
    assert reopened.documents_ids == expected_ids
    _assert_same_answers(reopened(queries, k=10), expected)
    shutil.rmtree(folder)


def test_build_arguments_are_checked(ray_cluster, tmp_path, model_path) -> None:
    with pytest.raises(ValueError, match="kind must be one of exact, plaid"):
        distributed.build_index(
            model_path, [{"_id": "a", "text": "x"}], tmp_path, kind="voyager", shards=2
        )
    with pytest.raises(ValueError, match="shards"):
        distributed.build_index(model_path, [], tmp_path, shards=0)
    with pytest.raises(TypeError, match=r"corpus\[1\]"):
        distributed.build_index(
            model_path, [{"_id": "a", "text": "x"}, "oops"], tmp_path
        )
    with pytest.raises(TypeError, match=r"corpus\[1\] \('b'\).*text must be a string"):
        distributed.build_index(
            model_path, [{"_id": "a", "text": "x"}, {"_id": "b", "text": 7}], tmp_path
        )
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        distributed.build_index(model_path, tmp_path / "nowhere.jsonl", tmp_path)
    with pytest.raises(TypeError, match="unexpected keyword|colour"):
        distributed.build_index(
            model_path, [{"_id": "a", "text": "x"}], tmp_path, colour="red"
        )


def test_bad_document_fails_naming_it_and_keeps_the_last_commit(
    ray_cluster, tmp_path, model_path, queries
) -> None:
    first = [
        {"_id": f"d{i}", "text": f"document number {i} about cells"} for i in range(8)
    ]
    index = distributed.build_index(
        model_path,
        first,
        tmp_path,
        kind="exact",
        ray_address=ray_cluster.address,
        batch_size=4,
        show_progress=False,
    )
    expected = index(queries, k=5)
    import ray

    # A dataset whose text column holds lists: the worker refuses the batch.
    broken = ray.data.from_items(
        [{"_id": f"e{i}", "text": ["not", "a", "string"]} for i in range(3)]
    )
    with pytest.raises(
        distributed.BuildError, match=r"TypeError: .*'e0'.*text must be a string"
    ):
        distributed.build_index(
            model_path,
            broken,
            tmp_path,
            kind="exact",
            ray_address=ray_cluster.address,
            batch_size=4,
            show_progress=False,
        )
    reopened = indexes.Exact(index_folder=tmp_path, show_progress=False)
    assert reopened.documents_ids == [f"d{i}" for i in range(8)]
    _assert_same_answers(reopened(queries, k=5), expected)
