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

import contextlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

import pytest

from tests._forked import FORKSERVER
from tests.test_indexes import make_index, unit_docs

COMMITS = {"voyager": 6, "plaid": 6, "exact": 6, "fast_plaid": 3}
# "<kind>-docs": the writers also store texts and metadata, which the readers
# filter on, fetch with every hit and check against the vectors' state.
COMMITS.update({"exact-docs": 6, "plaid-docs": 6})
BASE = [f"base{i}" for i in range(12)]


def _docs():
    return unit_docs(200, seed=50)


def _stored(ids: list, name: str, with_docs: str) -> dict:
    if not with_docs:
        return {}
    return {
        "documents": [f"text of {i}" for i in ids],
        "metadata": [{"id": i, "writer": name} for i in ids],
    }


def writer(kind: str, folder: str, name: str) -> dict:
    docs = _docs()
    counted = kind
    kind, _, with_docs = kind.partition("-")
    index = make_index(kind, Path(folder))  # opened once: goes stale at once
    offset = 20 if name == "w0" else 100
    for c in range(COMMITS[counted]):
        ids = [f"{name}-{c}-{j}" for j in range(2)]
        chunk = docs[offset + 2 * c : offset + 2 * c + 2]
        index.add_documents(ids, chunk, **_stored(ids, name, with_docs))
        if c % 3 == 2:
            index.remove_documents([f"{name}-{c - 2}-0"])
        if with_docs and c % 3 == 1:  # vectors only: texts and metadata kept
            index.update_documents(ids[:1], chunk[1:])
    return {"done": name}


def _check_documents(index, hits) -> str | None:
    """The view's texts and metadata agree with its ids (None) or the error."""
    from pylate_clone.indexes.storage.filters import check_filter

    live = set(index._ids.ids)
    everyone = check_filter({"writer": {"$in": ["base", "w0", "w1"]}})
    allowed = index._filter_allowed(everyone)  # the same view, no reload
    matched = {index._segments[s].ids[r] for s, a in enumerate(allowed) for r in a}
    if matched != live:
        return f"filter matched {sorted(matched ^ live)[:5]} off the live ids"
    for hit in (h for rs in hits for h in rs):
        if (
            hit["document"] != f"text of {hit['id']}"
            or hit["metadata"]["id"] != hit["id"]
        ):
            return f"hit {hit} carries another document's text"
    return None


def reader(kind: str, folder: str, mode: str) -> dict:
    docs = _docs()
    stop = Path(folder) / "STOP"
    kind, _, with_docs = kind.partition("-")
    index = make_index(kind, Path(folder))
    from pylate_clone import retrieve

    seen = {}
    while True:
        # Once STOP exists (the writers are done) one more search runs, so
        # every reader also checks the final state.
        stopping = stop.exists()
        if mode == "reopen":
            index = make_index(kind, Path(folder))
        options = {}
        if with_docs:
            options = {
                "filter": {"writer": {"$ne": "nobody"}},
                "return_documents": True,
                "queries": ["text of w0-1-0", "base3"],
                "hybrid": True,
            }
        with index._reload_lock if with_docs else contextlib.nullcontext():
            hits = retrieve.ColBERT(index=index).retrieve(docs[:2], k=5, **options)
            if with_docs:
                error = _check_documents(index, hits)
                if error:
                    return {"error": error}
        manifest = getattr(index, "_manifest", None) or index._store.manifest
        generation = manifest["generation"]
        live = set(index._ids.ids)  # the state the search ran on
        returned = {h["id"] for rs in hits for h in rs}
        if not returned <= live:
            return {"error": f"ids {returned - live} not live"}
        seen[generation] = sorted(live)
        (Path(folder) / f"ready-{os.getpid()}").touch()  # one search done
        if stopping:
            return {"seen": seen}


def _role(role: str, kind: str, folder: str, arg: str, report: str) -> None:
    """Run ``writer`` or ``reader`` in a forked child; its report goes to a file."""
    try:
        result = globals()[role](kind, folder, arg)
        code = 1 if "error" in result else 0
    except BaseException:
        result, code = {"error": traceback.format_exc()}, 1
    Path(report).write_text(json.dumps(result))
    sys.stdout.flush()
    os._exit(code)


class _Child:
    """A forked reader or writer and the report it leaves."""

    def __init__(self, role: str, kind: str, folder: str, arg: str) -> None:
        self.report = Path(folder).parent / f"{Path(folder).name}-{role}-{arg}.json"
        if role == "reader":  # two readers share a mode
            self.report = self.report.with_name(f"{id(self)}-{self.report.name}")
        self.process = FORKSERVER.Process(
            target=_role, args=(role, kind, folder, arg, str(self.report))
        )
        self.process.start()

    def finish(self, timeout: float) -> tuple[int | None, dict]:
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()
        text = self.report.read_text() if self.report.exists() else "{}"
        return self.process.exitcode, json.loads(text)


def _spawn(role, kind, folder, arg):
    return _Child(role, kind, folder, arg)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", ["voyager", "plaid", "exact", "fast_plaid", "exact-docs", "plaid-docs"]
)
def test_three_readers_two_writers(kind, tmp_path):
    docs = _docs()
    counted = kind
    kind, _, with_docs = kind.partition("-")
    make_index(kind, tmp_path).add_documents(
        BASE, docs[: len(BASE)], **_stored(BASE, "base", with_docs)
    )
    folder = str(tmp_path)
    readers = [
        _spawn("reader", counted, folder, m) for m in ("reopen", "reopen", "live")
    ]
    # The writers start once every reader is searching (not after a fixed
    # sleep: a forked reader's first search may take longer than a writer).
    deadline = time.monotonic() + 300
    while len(list(tmp_path.glob("ready-*"))) < len(readers):
        assert time.monotonic() < deadline, "the readers never searched"
        assert all(r.process.is_alive() for r in readers), "a reader died"
        time.sleep(0.05)
    writers = [_spawn("writer", counted, folder, w) for w in ("w0", "w1")]
    try:
        for proc in writers:
            code, report = proc.finish(timeout=400)
            assert code == 0, str(report)[-3000:]
    finally:
        (tmp_path / "STOP").touch()
    views: dict[str, set] = {}
    for proc in readers:
        code, report = proc.finish(timeout=200)
        assert code == 0, str(report)[-3000:]
        for generation, ids in report["seen"].items():
            key = frozenset(ids)
            assert views.setdefault(generation, key) == key, generation  # not torn
    expected = set(BASE)
    for name in ("w0", "w1"):
        for c in range(COMMITS[counted]):
            expected |= {f"{name}-{c}-0", f"{name}-{c}-1"}
            if c % 3 == 2:
                expected.discard(f"{name}-{c - 2}-0")
    final = make_index(kind, tmp_path)
    assert set(final.documents_ids) == expected
    # The readers ran from before the commits until after them: they saw the
    # first state, the final one (equal to the index's) and all in between.
    assert len(views) >= 2
    assert set(views[max(views, key=int)]) == expected
