"""A process SIGKILLed during any write leaves a loadable index in one whole state.

A child process performs one write and is killed either at a named point of
the write (the test-only ``PYLATE_CLONE_TEST_CRASH_AT`` hook makes it SIGKILL
itself there) or after a random delay by the parent. The parent then reloads
the index and checks it holds exactly the content from before the call or
the content after it, that every document is found by its own vectors, and
that the next write succeeds and cleans the leftovers. Every write path is
covered: add, remove, update, iterable (streamed) add, merge and compact, on
the segment kinds (Voyager, PLAID, Exact) and on FastPlaid (format 1).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

from pylate_clone import retrieve
from pylate_clone.indexes.storage.faults import CRASH_ENV
from pylate_clone.indexes.storage.segments import SegmentStore
from tests._forked import FORKSERVER
from tests.test_indexes import make_index, unit_docs

N_BASE = 25
BASE_IDS = [f"b{i}" for i in range(N_BASE - 5)] + list(range(5))
NEW_IDS = ["n0", "n1", "n2", 99]
REPLACED = "b2"
REMOVED = ["b1", 3, "b7"]
SEGMENTED = ("voyager", "plaid", "exact")


def _docs():
    return unit_docs(N_BASE + len(NEW_IDS) + 1, seed=42)


def _texts(ids: list, generation: str) -> dict[str, list]:
    """Texts and metadata of a ``-docs`` kind's documents of one generation."""
    return {
        "documents": [f"{generation} text of {i}" for i in ids],
        "metadata": [{"generation": generation, "id": str(i)} for i in ids],
    }


def do_write(kind: str, folder: str, op: str, started: Any = None) -> None:
    docs = _docs()
    kind, _, with_docs = kind.partition("-")
    index = make_index(kind, Path(folder))
    if started is not None:
        started.set()
    new_ids, new_docs = NEW_IDS + [REPLACED], docs[N_BASE:]
    stored = _texts(new_ids, "new") if with_docs else {}
    if op == "add":
        index.add_documents(new_ids, new_docs, **stored)
    elif op == "update":
        index.update_documents(new_ids, new_docs, **stored)
    elif op == "iterable":
        index.add_documents(
            iter([(new_ids[:2], new_docs[:2]), (new_ids[2:], new_docs[2:])])
        )
    elif op == "remove":
        index.remove_documents(REMOVED)
    elif op == "remove2":  # the second commit collects the first one's garbage
        index.remove_documents(REMOVED[:1])
        index.remove_documents(REMOVED[1:])
    elif op == "merge":
        index.max_segments = 1  # force a merge of the template's segments
        index.merge()
    else:
        index.compact()


def expected_states(op: str) -> tuple[set, set]:
    before = set(BASE_IDS)
    if op in ("add", "update", "iterable"):
        return before, before | set(NEW_IDS)
    if op in ("remove", "remove2"):
        return before, before - set(REMOVED)
    return before, before  # merge / compact keep the content


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash_templates")
    docs = _docs()
    for kind in (*SEGMENTED, "fast_plaid", *WITH_DOCS):
        base, _, with_docs = kind.partition("-")
        index = make_index(base, root / kind)
        first, rest = BASE_IDS[:15], BASE_IDS[15:]
        texts = (lambda ids: _texts(ids, "base")) if with_docs else (lambda ids: {})
        index.add_documents(first, docs[:15], **texts(first))
        index.add_documents(rest, docs[15:N_BASE], **texts(rest))
        if base in SEGMENTED:
            index.remove_documents(["b0"])  # a tombstone for compact to drop
            index.add_documents(["b0"], [docs[0]], **texts(["b0"]))
    return root


def _child(kind, folder, op, crash_at, started, log) -> None:
    """One write in a forked child; its stderr goes to ``log`` for the assertions."""
    os.environ.pop(CRASH_ENV, None)
    if crash_at:
        os.environ[CRASH_ENV] = crash_at
    with open(log, "w") as err:
        os.dup2(err.fileno(), 2)
        sys.stderr = os.fdopen(2, "w", closefd=False)
        try:
            do_write(kind, folder, op, started)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
    os._exit(0)


def _run_child(kind, folder, op, crash_at=None, kill_after=None):
    started = FORKSERVER.Event()
    log = Path(folder).with_suffix(".stderr")
    proc = FORKSERVER.Process(
        target=_child, args=(kind, str(folder), op, crash_at, started, str(log))
    )
    proc.start()
    if kill_after is not None:
        assert started.wait(timeout=300), "the child never opened the index"
        time.sleep(kill_after)
        proc.kill()
    proc.join(timeout=300)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
    err = log.read_text() if log.exists() else ""
    return proc.exitcode, err


def _check_documents(index, ids, state, op):
    """Texts and metadata are those of the vectors' committed state."""
    changed = state == "after" and op in ("add", "update")
    new = set(NEW_IDS + [REPLACED]) if changed else set()
    names = sorted(ids, key=str)
    for record in index.get_documents(names):
        generation = "new" if record["id"] in new else "base"
        assert record["document"] == f"{generation} text of {record['id']}", record
        assert record["metadata"] == {"generation": generation, "id": str(record["id"])}
    assert set(index.filter_ids({"generation": "new"})) == new
    assert set(index.filter_ids({"generation": "base"})) == set(ids) - new
    hits = index.keyword_search([f"{REPLACED}"], 1)[0]
    assert [h["id"] for h in hits] == ([REPLACED] if REPLACED in ids else [])


def _check_index(kind, folder, op):
    docs = _docs()
    before, after = expected_states(op)
    kind, _, with_docs = kind.partition("-")
    index = make_index(kind, folder)
    ids = set(index.documents_ids)
    assert ids in (before, after), sorted(map(str, ids ^ after))
    state = "after" if ids == after and op not in ("merge", "compact") else "before"
    vectors = {i: docs[n] for n, i in enumerate(BASE_IDS)}
    if state == "after" and op not in ("remove", "remove2"):
        vectors.update({i: docs[N_BASE + n] for n, i in enumerate(NEW_IDS)})
        vectors[REPLACED] = docs[-1]
    names = sorted(ids, key=str)
    results = retrieve.ColBERT(index=index).retrieve([vectors[i] for i in names], k=1)
    assert [rs[0]["id"] for rs in results] == names
    if with_docs:
        _check_documents(index, ids, state, op)
    # The next write works and garbage-collects the interrupted write's leftovers.
    index.add_documents(["post"], docs[0][:3])
    root = folder / "colbert"
    if kind in SEGMENTED:
        manifest = json.loads((root / "manifest.json").read_text())
        keep = SegmentStore.referenced(manifest) | set(manifest["previous"])
        stray = [
            p.name
            for p in root.iterdir()
            if p.name.startswith(("tmp-", "seg-", "del-", "centroids-"))
            and p.name not in keep
        ]
        assert not stray, stray
    else:
        leftovers = sorted(
            p.name for p in root.iterdir() if p.name.startswith(("gen-", "tmp-"))
        )
        assert 1 <= len(leftovers) <= 2, leftovers
        assert all(name.startswith("gen-") for name in leftovers), leftovers
    return state


SEGMENT_POINTS = [
    ("add", "batch_written", "before"),
    ("add", "segment_written", "before"),
    ("add", "before_manifest", "before"),
    ("add", "manifest_replaced", "after"),
    ("update", "segment_written", "before"),
    ("remove2", "garbage_collecting", "after"),
    ("iterable", "batch_written", "before"),
    ("iterable", "manifest_replaced", "after"),
    ("remove", "tombstones_written", "before"),
    ("remove", "before_manifest", "before"),
    ("remove", "manifest_replaced", "after"),
    ("merge", "segment_written", "before"),
    ("merge", "merge_staged", "before"),
    ("compact", "compact_staged", "before"),
    ("compact", "manifest_replaced", "before"),
]
FAST_PLAID_POINTS = [
    ("add", "plaid_copy_made", "before"),
    ("add", "plaid_native_written", "before"),
    ("add", "generation_renamed", "before"),
    ("add", "manifest_replaced", "after"),
    ("remove", "staging_written", "before"),
    ("remove", "garbage_collecting", "after"),
    ("update", "plaid_deleted", "before"),
]
# Every point on Exact; on PLAID and Voyager the paths where their own files
# are written (the storage steps they share with Exact are the same code).
KIND_POINTS = [
    ("add", "segment_written", "before"),
    ("add", "manifest_replaced", "after"),
    ("iterable", "batch_written", "before"),
    ("remove", "tombstones_written", "before"),
    ("merge", "merge_staged", "before"),
    ("compact", "compact_staged", "before"),
]
# PLAID's compressed segments: the codec and the codes are written inside the
# staged segment's transaction (a fresh codec on compact, codes on every write).
PLAID_POINTS = [
    ("add", "codes_written", "before"),
    ("compact", "codec_written", "before"),
    ("compact", "codes_written", "before"),
    ("merge", "codes_written", "before"),
]
# Voyager's merge and compact of the template grow a copy of its one segment
# without tombstones (the graph-reuse write path): killed mid-way as well.
VOYAGER_REUSE_POINTS = [
    ("merge", "segment_written", "before"),
    ("compact", "segment_written", "before"),
    ("compact", "manifest_replaced", "before"),
]
# The document store (texts, metadata, FTS5 BM25 in one SQLite file per
# segment): killed while its file is written, and around the manifest swap.
WITH_DOCS = ("exact-docs", "plaid-docs", "voyager-docs")
DOCS_POINTS = [
    ("add", "documents_written", "before"),
    ("add", "segment_written", "before"),
    ("add", "before_manifest", "before"),
    ("add", "manifest_replaced", "after"),
    ("update", "documents_written", "before"),
    ("update", "manifest_replaced", "after"),
    ("remove", "tombstones_written", "before"),
    ("remove", "manifest_replaced", "after"),
    ("merge", "documents_written", "before"),
    ("compact", "documents_written", "before"),
    ("compact", "manifest_replaced", "before"),
]
CASES = (
    [("exact", *case) for case in SEGMENT_POINTS]
    + [(k, *case) for k in ("voyager", "plaid") for case in KIND_POINTS]
    + [("plaid", *case) for case in PLAID_POINTS]
    + [("voyager", *case) for case in VOYAGER_REUSE_POINTS]
    + [("fast_plaid", *case) for case in FAST_PLAID_POINTS]
    + [("exact-docs", *case) for case in DOCS_POINTS]
    + [(k, *DOCS_POINTS[i]) for k in ("plaid-docs", "voyager-docs") for i in (0, 3)]
    + [("plaid-docs", "compact", "documents_written", "before")]
)


@pytest.mark.slow
@pytest.mark.parametrize("kind,op,point,state", CASES)
def test_kill_at_named_point(kind, op, point, state, templates, tmp_path):
    folder = tmp_path / "idx"
    shutil.copytree(templates / kind, folder)
    code, err = _run_child(kind, folder, op, crash_at=point)
    assert code == -signal.SIGKILL, (code, err[-2000:])
    assert _check_index(kind, folder, op) == state


@pytest.mark.slow
@pytest.mark.parametrize("kind", [*SEGMENTED, "fast_plaid", "exact-docs"])
def test_kill_at_random_moments(kind, templates, tmp_path):
    rng = random.Random(1234)
    states = []
    delays = [0.05, 0.4, 1.2, 3.0] if kind == "fast_plaid" else [0.0, 0.03, 0.1]
    ops = ["add", "compact", "remove"]
    for trial, delay in enumerate(delays):
        op = (
            ops[trial % len(ops)]
            if kind != "fast_plaid"
            else ["add", "remove"][trial % 2]
        )
        folder = tmp_path / f"trial{trial}"
        shutil.copytree(templates / kind, folder)
        code, err = _run_child(
            kind, folder, op, kill_after=delay * rng.uniform(0.5, 1.5)
        )
        assert code in (0, -signal.SIGKILL), err[-2000:]
        states.append(_check_index(kind, folder, op))
    print(json.dumps({kind: states}))
