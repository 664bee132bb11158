"""A process SIGKILLed during add_documents / remove_documents leaves a loadable index.

A child process performs one write and is killed either at a named point of
the write (the test-only ``PYLATE_CLONE_TEST_CRASH_AT`` hook makes it SIGKILL
itself there) or after a random delay by the parent. The parent then reloads
the index and checks it holds exactly the content from before the call or
the content after it, that every document is found by its own vectors, and
that the next write succeeds and cleans the leftovers.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pylate_clone import retrieve
from pylate_clone.indexes._storage import CRASH_ENV
from tests.test_indexes import make_index, unit_docs

ROOT = Path(__file__).resolve().parents[1]
N_BASE = 25
BASE_IDS = [f"b{i}" for i in range(N_BASE - 5)] + list(range(5))
NEW_IDS = ["n0", "n1", "n2", 99]
REPLACED = "b2"
REMOVED = ["b1", 3, "b7"]

CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from tests.test_crash_safety import do_write
    do_write({kind!r}, {folder!r}, {op!r}, announce=True)
    """
)


def _docs():
    return unit_docs(N_BASE + len(NEW_IDS) + 1, seed=42)


def do_write(kind: str, folder: str, op: str, announce: bool = False) -> None:
    docs = _docs()
    index = make_index(kind, Path(folder))
    if announce:
        print("START", flush=True)
    if op == "add":
        index.add_documents(NEW_IDS + [REPLACED], docs[N_BASE:])
    else:
        index.remove_documents(REMOVED)


def expected_states(op: str) -> tuple[set, set]:
    before = set(BASE_IDS)
    after = before | set(NEW_IDS) if op == "add" else before - set(REMOVED)
    return before, after


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash_templates")
    docs = _docs()
    for kind in ("voyager", "plaid"):
        index = make_index(kind, root / kind)
        index.add_documents(BASE_IDS, docs[:N_BASE])
    return root


def _run_child(kind, folder, op, crash_at=None, kill_after=None):
    env = dict(os.environ)
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    script = CHILD.format(root=str(ROOT), kind=kind, folder=str(folder), op=op)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if kill_after is not None:
        assert proc.stdout.readline().strip() == "START"
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def _check_index(kind, folder, op):
    docs = _docs()
    before, after = expected_states(op)
    index = make_index(kind, folder)
    ids = set(index.documents_ids)
    assert ids in (before, after), sorted(map(str, ids ^ after))
    state = "after" if ids == after else "before"
    vectors = {i: docs[n] for n, i in enumerate(BASE_IDS)}
    if state == "after" and op == "add":
        vectors.update({i: docs[N_BASE + n] for n, i in enumerate(NEW_IDS)})
        vectors[REPLACED] = docs[-1]
    names = sorted(ids, key=str)
    results = retrieve.ColBERT(index=index).retrieve([vectors[i] for i in names], k=1)
    assert [rs[0]["id"] for rs in results] == names
    # The next write works and garbage-collects the interrupted write's leftovers.
    index.add_documents(["post"], docs[0][:3])
    leftovers = sorted(
        p.name
        for p in (folder / "colbert").iterdir()
        if p.name.startswith(("gen-", "tmp-"))
    )
    assert len(leftovers) == 1 and leftovers[0].startswith("gen-"), leftovers
    return state


NAMED = {
    "voyager": [
        ("add", "voyager_payload_written"),
        ("add", "generation_renamed"),
        ("remove", "manifest_replaced"),
        ("remove", "garbage_collecting"),
    ],
    "plaid": [
        ("add", "plaid_copy_made"),
        ("add", "plaid_deleted"),
        ("add", "plaid_native_written"),
        ("add", "generation_renamed"),
        ("add", "manifest_replaced"),
        ("remove", "staging_written"),
        ("remove", "garbage_collecting"),
    ],
}
EXPECTED_STATE = {
    "voyager_payload_written": "before",
    "plaid_copy_made": "before",
    "plaid_deleted": "before",
    "plaid_native_written": "before",
    "staging_written": "before",
    "generation_renamed": "before",
    "manifest_replaced": "after",
    "garbage_collecting": "after",
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind,op,point", [(k, op, p) for k, cases in NAMED.items() for op, p in cases]
)
def test_kill_at_named_point(kind, op, point, templates, tmp_path):
    folder = tmp_path / "idx"
    shutil.copytree(templates / kind, folder)
    code, err = _run_child(kind, folder, op, crash_at=point)
    assert code == -signal.SIGKILL, err[-2000:]
    assert _check_index(kind, folder, op) == EXPECTED_STATE[point]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["voyager", "plaid"])
def test_kill_at_random_moments(kind, templates, tmp_path):
    rng = random.Random(1234)
    states = []
    delays = [0.05, 0.4, 1.2, 3.0] if kind == "plaid" else [0.0, 0.05]
    for trial, delay in enumerate(delays):
        op = "add" if trial % 2 == 0 else "remove"
        folder = tmp_path / f"trial{trial}"
        shutil.copytree(templates / kind, folder)
        code, err = _run_child(
            kind, folder, op, kill_after=delay * rng.uniform(0.5, 1.5)
        )
        assert code in (0, -signal.SIGKILL), err[-2000:]
        states.append(_check_index(kind, folder, op))
    print(json.dumps({kind: states}))
