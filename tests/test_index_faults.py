"""A write that hits ENOSPC / EACCES / EROFS part-way leaves the previous state.

The storage layer's test hook (``_storage.simulate_fault``) fails the n-th
file written from then on, as a full disk, a permission change or a read-only
remount would. For every n up to the number of files the operation writes,
the error must say what failed and where, the index must still open and
answer from its previous state, and no staged file may outlive the next open.
"""

from __future__ import annotations

import errno
import json
import shutil

import pytest

from pylate_clone import retrieve
from pylate_clone.indexes.storage.faults import simulate_fault
from pylate_clone.indexes.storage.segments import SegmentStore
from tests.test_indexes import SEGMENTED, make_index, unit_docs

ACTION = {"add": "add_documents", "remove": "remove_documents", "compact": "compact"}
DOCS = unit_docs(40, seed=40)
BASE = [f"f{i}" for i in range(30)]


def _operation(index, op: str) -> None:
    if op == "add":
        index.add_documents(["n0", "n1", "f2"], DOCS[30:33])
    elif op == "remove":
        index.remove_documents(["f1", "f4"])
    else:
        index.compact()


def _assert_clean(folder, manifest) -> None:
    keep = SegmentStore.referenced(manifest) | set(manifest["previous"])
    stray = sorted(
        p.name
        for p in folder.iterdir()
        if p.name.startswith(("tmp-", "seg-", "del-", "centroids-", "manifest.json."))
        and p.name not in keep
    )
    assert not stray, stray


@pytest.mark.parametrize("kind", SEGMENTED)
@pytest.mark.parametrize("error", ["ENOSPC", "EACCES", "EROFS"])
@pytest.mark.parametrize("op", ["add", "remove", "compact"])
def test_fault_part_way_keeps_previous_state(kind, error, op, tmp_path):
    index = make_index(kind, tmp_path)
    index.add_documents(BASE[:20], DOCS[:20])
    index.add_documents(BASE[20:], DOCS[20:30])
    index.remove_documents(["f0"])
    before = sorted(index.documents_ids)
    nth, failures = 1, 0
    while True:
        copy = tmp_path / f"try{nth}"
        shutil.copytree(tmp_path / "colbert", copy / "colbert")
        target = make_index(kind, copy)
        try:
            with simulate_fault(error, nth):
                _operation(target, op)
        except OSError as raised:
            failures += 1
            assert raised.errno == getattr(errno, error)
            message = str(raised)
            assert raised.strerror.startswith(ACTION[op] + " failed writing"), message
            assert str(copy / "colbert") in message and error in message, message
            assert "previous committed state" in message
            reopened = make_index(kind, copy)
            assert sorted(reopened.documents_ids) == before
            hits = retrieve.ColBERT(index=reopened).retrieve(DOCS[5], k=1)
            assert hits[0][0]["id"] == "f5"
            manifest = json.loads((copy / "colbert" / "manifest.json").read_text())
            _assert_clean(copy / "colbert", manifest)
            nth += 1
            continue
        # The n-th write is past the end of the operation: it succeeded.
        assert failures >= 2, failures  # the fault really hit files of the write
        break
