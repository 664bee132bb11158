"""Several processes on one index folder: 3 readers and 2 writers at once.

Readers (two reopening the index in a loop, one long-lived instance that
reloads itself) search while two writers each make a fixed number of commits
(adds, and removals of their own earlier documents). Checks: no process
errors; every id a search returns was live in the state the reader saw; all
readers that saw a generation saw the same documents in it (a whole committed
state, never a torn one); the final index holds every document both writers
left (no lost update).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.test_indexes import make_index, unit_docs

ROOT = Path(__file__).resolve().parents[1]
COMMITS = {"voyager": 6, "plaid": 6, "exact": 6, "fast_plaid": 3}
BASE = [f"base{i}" for i in range(12)]

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from tests.test_index_concurrency import {role}
    {role}({kind!r}, {folder!r}, {arg!r})
    """
)


def _docs():
    return unit_docs(200, seed=50)


def writer(kind: str, folder: str, name: str) -> None:
    docs = _docs()
    index = make_index(kind, Path(folder))  # opened once: goes stale at once
    offset = 20 if name == "w0" else 100
    for c in range(COMMITS[kind]):
        ids = [f"{name}-{c}-{j}" for j in range(2)]
        index.add_documents(ids, docs[offset + 2 * c : offset + 2 * c + 2])
        if c % 3 == 2:
            index.remove_documents([f"{name}-{c - 2}-0"])
    print(json.dumps({"done": name}), flush=True)


def reader(kind: str, folder: str, mode: str) -> None:
    docs = _docs()
    stop = Path(folder) / "STOP"
    index = make_index(kind, Path(folder))
    from pylate_clone import retrieve

    seen = {}
    while not stop.exists():
        if mode == "reopen":
            index = make_index(kind, Path(folder))
        hits = retrieve.ColBERT(index=index).retrieve(docs[:2], k=5)
        manifest = getattr(index, "_manifest", None) or index._store.manifest
        generation = manifest["generation"]
        live = set(index._ids.ids)  # the state the search ran on
        returned = {h["id"] for rs in hits for h in rs}
        if not returned <= live:
            print(json.dumps({"error": f"ids {returned - live} not live"}), flush=True)
            sys.exit(1)
        seen[generation] = sorted(live)
    print(json.dumps({"seen": seen}), flush=True)


def _spawn(role, kind, folder, arg):
    script = SCRIPT.format(root=str(ROOT), role=role, kind=kind, folder=folder, arg=arg)
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["voyager", "plaid", "exact", "fast_plaid"])
def test_three_readers_two_writers(kind, tmp_path):
    docs = _docs()
    make_index(kind, tmp_path).add_documents(BASE, docs[: len(BASE)])
    folder = str(tmp_path)
    readers = [_spawn("reader", kind, folder, m) for m in ("reopen", "reopen", "live")]
    time.sleep(1.0)
    writers = [_spawn("writer", kind, folder, w) for w in ("w0", "w1")]
    try:
        for proc in writers:
            out, err = proc.communicate(timeout=400)
            assert proc.returncode == 0, err[-3000:]
    finally:
        (tmp_path / "STOP").touch()
    views: dict[str, set] = {}
    for proc in readers:
        out, err = proc.communicate(timeout=200)
        assert proc.returncode == 0, (out + err)[-3000:]
        report = json.loads(out.strip().splitlines()[-1])
        for generation, ids in report["seen"].items():
            key = frozenset(ids)
            assert views.setdefault(generation, key) == key, generation  # not torn
    expected = set(BASE)
    for name in ("w0", "w1"):
        for c in range(COMMITS[kind]):
            expected |= {f"{name}-{c}-0", f"{name}-{c}-1"}
            if c % 3 == 2:
                expected.discard(f"{name}-{c - 2}-0")
    final = make_index(kind, tmp_path)
    assert set(final.documents_ids) == expected
    assert len(views) >= 2  # the readers did run during the commits
