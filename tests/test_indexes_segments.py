"""The segment engine: O(change) writes, tombstones, merges, compaction, reloads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pylate_clone import rank, retrieve
from pylate_clone.indexes import IndexFormatError
from pylate_clone.indexes.storage.commit import write_lock
from tests.test_indexes import DIM, SEGMENTED, make_index, top_ids, unit_docs


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "colbert" / "manifest.json").read_text())


def _file_stats(folder: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for path in folder.rglob("*"):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(folder))] = (st.st_ino, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("kind", SEGMENTED)
def test_add_writes_one_new_segment_and_never_touches_old_files(kind, tmp_path):
    docs = unit_docs(50, seed=20)
    index = make_index(kind, tmp_path)
    index.add_documents([f"a{i}" for i in range(40)], docs[:40])
    first = _manifest(tmp_path)["segments"][0]["name"]
    before = _file_stats(tmp_path / "colbert" / first)
    index.add_documents([f"b{i}" for i in range(10)], docs[40:])
    index.add_documents(["a1"], docs[49])  # replaces a1: tombstone in segment 1
    manifest = _manifest(tmp_path)
    assert [s["name"] for s in manifest["segments"]][0] == first
    assert len(manifest["segments"]) == 3
    assert _file_stats(tmp_path / "colbert" / first) == before
    tomb = manifest["segments"][0]["tombstones"]
    assert tomb["count"] == 1 and (tmp_path / "colbert" / tomb["file"]).is_file()
    assert np.load(tmp_path / "colbert" / tomb["file"]).tolist() == [1]
    assert len(index) == 50
    hits = retrieve.ColBERT(index=index).retrieve([docs[49], docs[1]], k=2)
    assert hits[0][0]["id"] in ("a1", "b9")  # same vectors, two ids
    assert all(h["id"] != "a1" for h in hits[1][:1])


@pytest.mark.parametrize("kind", SEGMENTED)
def test_remove_writes_only_tombstones(kind, tmp_path):
    docs = unit_docs(30, seed=21)
    ids = [f"r{i}" for i in range(30)]
    index = make_index(kind, tmp_path)
    index.add_documents(ids, docs)
    segment = _manifest(tmp_path)["segments"][0]["name"]
    before = _file_stats(tmp_path / "colbert" / segment)
    index.remove_documents(["r3", "r7"])
    index.remove_documents(["r8"])
    manifest = _manifest(tmp_path)
    assert [s["name"] for s in manifest["segments"]] == [segment]
    assert manifest["segments"][0]["tombstones"]["count"] == 3
    assert manifest["num_documents"] == 27
    assert _file_stats(tmp_path / "colbert" / segment) == before
    results = retrieve.ColBERT(index=index).retrieve(docs, k=30)
    for rs in results:
        assert not {"r3", "r7", "r8"} & {r["id"] for r in rs}
    # Older tombstone files are collected once two newer manifests exist.
    index.remove_documents(["r9"])
    index.remove_documents(["r10"])
    dels = sorted(p.name for p in (tmp_path / "colbert").glob("del-*"))
    assert len(dels) <= 2, dels


@pytest.mark.parametrize("kind", SEGMENTED)
def test_merge_policy_bounds_segments(kind, tmp_path):
    docs = unit_docs(60, seed=22)
    ids = [f"m{i}" for i in range(60)]
    index = make_index(kind, tmp_path)
    for start in range(0, 60, 5):  # 12 small commits
        index.add_documents(ids[start : start + 5], docs[start : start + 5])
    assert index.num_segments <= index.max_segments
    assert sorted(index.documents_ids) == sorted(ids)
    results = retrieve.ColBERT(index=index).retrieve(docs, k=1)
    assert [r[0]["id"] for r in results] == ids


@pytest.mark.parametrize("kind", SEGMENTED)
def test_compact_reclaims_deleted_rows(kind, tmp_path):
    docs = unit_docs(40, seed=23)
    ids = [f"c{i}" for i in range(40)]
    index = make_index(kind, tmp_path)
    index.add_documents(ids[:20], docs[:20])
    index.add_documents(ids[20:], docs[20:])
    gone = ids[::3]
    index.remove_documents(gone)
    live_tokens = sum(len(d) for i, d in zip(ids, docs) if i not in gone)
    index.compact()
    manifest = _manifest(tmp_path)
    assert len(manifest["segments"]) == 1
    segment = manifest["segments"][0]
    assert segment["tombstones"] is None
    assert segment["num_tokens"] == live_tokens
    assert segment["num_docs"] == 40 - len(gone)
    folder = tmp_path / "colbert" / segment["name"]
    if kind == "plaid":  # compressed: codes, packed residuals and gains, no tokens
        assert not (folder / "tokens.npy").exists()
        assert np.load(folder / "codes.npy").shape == (live_tokens,)
        assert np.load(folder / "residuals.npy").shape == (live_tokens, DIM // 2)
        assert np.load(folder / "gains.npy").shape == (live_tokens,)
    else:
        shape = np.load(folder / "tokens.npy", mmap_mode="r").shape
        assert shape == (live_tokens, DIM)
    if kind == "voyager":
        import voyager

        graph = voyager.Index.load(str(folder / "index.voyager"))
        # The graph holds tokens 0, 3, 6, ... of each live document.
        live = [d for i, d in zip(ids, docs) if i not in gone]
        assert graph.num_elements == sum(-(-len(d) // 3) for d in live)
    kept = [i for i in ids if i not in gone]
    results = retrieve.ColBERT(index=index).retrieve(
        [d for i, d in zip(ids, docs) if i not in gone], k=1
    )
    assert [r[0]["id"] for r in results] == kept
    # Two commits later the old segments are gone from the disk too.
    index.remove_documents([kept[0]])
    index.remove_documents([kept[1]])
    names = {p.name for p in (tmp_path / "colbert").iterdir()}
    assert (
        not {s for s in names if s.startswith("seg-")}
        - {s["name"] for s in _manifest(tmp_path)["segments"]}
        - set(_manifest(tmp_path)["previous"])
    )


@pytest.mark.parametrize("kind", SEGMENTED)
def test_open_instance_reloads_after_another_commit(kind, tmp_path):
    docs = unit_docs(30, seed=24)
    reader = make_index(kind, tmp_path)
    writer = make_index(kind, tmp_path)
    writer.add_documents([f"w{i}" for i in range(20)], docs[:20])
    assert len(reader) == 20
    assert retrieve.ColBERT(index=reader).retrieve(docs[5], k=1)[0][0]["id"] == "w5"
    writer.remove_documents(["w5"])
    writer.add_documents([f"x{i}" for i in range(10)], docs[20:])
    hits = retrieve.ColBERT(index=reader).retrieve([docs[5], docs[25]], k=1)
    assert hits[0][0]["id"] != "w5" and hits[1][0]["id"] == "x5"
    assert "w5" not in reader.documents_ids and len(reader) == 29


def test_exact_index_equals_rerank(tmp_path):
    docs = unit_docs(80, seed=25)
    ids = [f"e{i}" for i in range(80)]
    queries = unit_docs(6, seed=26, lo=3, hi=6)
    index = make_index("exact", tmp_path)
    index.add_documents(ids[:50], docs[:50])
    index.add_documents(ids[50:], docs[50:])
    got = index(queries, k=10)
    stored = [d.astype(np.float16).astype(np.float32) for d in docs]
    ref = rank.rerank([ids] * 6, queries, [stored] * 6)
    assert top_ids(got) == top_ids([r[:10] for r in ref])
    for g, r in zip(got, ref):
        np.testing.assert_allclose(
            [x["score"] for x in g], [x["score"] for x in r[:10]], rtol=1e-5
        )
    # Subset: exact over the allowed documents only.
    sub = index(queries, k=3, subset=ids[10:20])
    ref = rank.rerank([ids[10:20]] * 6, queries, [stored[10:20]] * 6)
    assert top_ids(sub) == top_ids([r[:3] for r in ref])


@pytest.mark.parametrize("kind", SEGMENTED)
def test_iterable_build_equals_list_build(kind, tmp_path):
    docs = unit_docs(45, seed=27)
    ids = [f"i{i}" for i in range(45)]
    listed = make_index(kind, tmp_path / "list")
    listed.add_documents(ids, docs)

    def batches():
        for start in range(0, 45, 10):
            yield ids[start : start + 10], docs[start : start + 10]

    streamed = make_index(kind, tmp_path / "iter")
    streamed.add_documents(batches())
    assert listed.documents_ids == streamed.documents_ids
    a = (
        tmp_path
        / "list"
        / "colbert"
        / _manifest(tmp_path / "list")["segments"][0]["name"]
    )
    b = (
        tmp_path
        / "iter"
        / "colbert"
        / _manifest(tmp_path / "iter")["segments"][0]["name"]
    )
    stored = ("codes.npy", "residuals.npy", "gains.npy") if kind == "plaid" else ()
    for name in stored or ("tokens.npy",):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for name in ("offsets.npy", "ids.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    if kind == "plaid":
        for name in ("ivf_indptr.npy", "ivf_docs.npy"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    q = unit_docs(5, seed=28, lo=3, hi=5)
    r1 = retrieve.ColBERT(index=listed).retrieve(q, k=5)
    r2 = retrieve.ColBERT(index=streamed).retrieve(q, k=5)
    assert top_ids(r1) == top_ids(r2)

    # A bad batch in the middle of a stream commits nothing.
    def broken():
        yield ["z0"], docs[:1]
        yield ["z1"], [np.full((3, DIM), np.nan, dtype=np.float32)]

    with pytest.raises(ValueError, match="NaN"):
        streamed.add_documents(broken())
    assert "z0" not in streamed.documents_ids and len(streamed) == 45
    assert not list((tmp_path / "iter" / "colbert").glob("tmp-*"))


@pytest.mark.parametrize("kind", SEGMENTED + ["fast_plaid"])
def test_embedding_validation_names_argument_and_position(kind, tmp_path):
    docs = unit_docs(12, seed=29)
    index = make_index(kind, tmp_path)
    index.add_documents([f"v{i}" for i in range(10)], docs[:10])
    nan = docs[0].copy()
    nan[1, 2] = np.nan
    inf = docs[0].copy()
    inf[0, 0] = np.inf
    cube = np.ones((2, 3, DIM), dtype=np.float32)
    cases = [
        (
            ValueError,
            r"documents_embeddings\[1\] \(document id 'n1'\).*NaN",
            [docs[1], nan],
        ),
        (
            ValueError,
            r"documents_embeddings\[1\] \(document id 'n1'\).*NaN or inf",
            [docs[1], inf],
        ),
        (ValueError, r"documents_embeddings\[1\] must be a 2-D", [docs[1], cube]),
        (
            TypeError,
            r"documents_embeddings\[1\] must be a matrix of numbers.*got str",
            [docs[1], "text"],
        ),
        (
            TypeError,
            r"documents_embeddings\[0\] must be a matrix of numbers.*got NoneType",
            [None, docs[1]],
        ),
        (
            TypeError,
            r"documents_embeddings\[1\] must be a matrix of numbers",
            [docs[1], [["a", "b"]]],
        ),
    ]
    for error, message, embeddings in cases:
        with pytest.raises(error, match=message):
            index.add_documents(["n0", "n1"], embeddings)
        with pytest.raises(error, match=message):
            index.update_documents(["n0", "n1"], embeddings)
    with pytest.raises(TypeError, match="documents_embeddings must be"):
        index.add_documents(["n0"], "text")
    assert len(index) == 10
    query_cases = [
        (ValueError, r"queries_embeddings\[1\].*NaN", [docs[2], nan]),
        (ValueError, r"queries_embeddings\[1\] must be a 2-D", [docs[2], cube]),
        (
            TypeError,
            r"queries_embeddings\[0\] must be a matrix of numbers.*got str",
            ["q", docs[2]],
        ),
        (
            TypeError,
            r"queries_embeddings\[0\] must be a matrix of numbers.*got NoneType",
            [None],
        ),
        (ValueError, r"queries_embeddings\[0\] has dimension 3", [docs[2][:, :3]]),
    ]
    for error, message, queries in query_cases:
        with pytest.raises(error, match=message):
            index(queries, k=2)
        with pytest.raises(error, match=message):
            retrieve.ColBERT(index=index).retrieve(queries, k=2)
    with pytest.raises(TypeError, match="queries_embeddings must be"):
        index(None, k=2)


@pytest.mark.parametrize("kind", SEGMENTED)
def test_second_writer_times_out_with_a_clear_error(kind, tmp_path):
    docs = unit_docs(4, seed=30)
    index = make_index(kind, tmp_path, lock_timeout=0.3)
    with write_lock(tmp_path / "colbert"):  # another writer holds the lock
        with pytest.raises(TimeoutError, match="write lock after 0.3 s"):
            index.add_documents(["a"], docs[0])
    index.add_documents(["a"], docs[0])
    assert index.documents_ids == ["a"]
    with pytest.raises(ValueError, match="lock_timeout"):
        make_index(kind, tmp_path, lock_timeout=-1)


def test_format_one_plaid_folder_opens_with_fast_plaid_only(tmp_path):
    docs = unit_docs(20, seed=31)
    old = make_index("fast_plaid", tmp_path)
    old.add_documents([f"o{i}" for i in range(20)], docs)
    with pytest.raises(IndexFormatError, match="FastPlaid"):
        make_index("plaid", tmp_path)
    again = make_index("fast_plaid", tmp_path)
    assert len(again) == 20


def test_fast_plaid_refuses_the_segment_format(tmp_path):
    docs = unit_docs(3, seed=32)
    make_index("plaid", tmp_path).add_documents(["x"], docs[0])
    with pytest.raises(IndexFormatError, match="unsupported format version 3"):
        make_index("fast_plaid", tmp_path)


def _as_format_two(folder, docs_by_id):
    """Rewrite a compressed PLAID folder as the float16 format 2 wrote it.

    Format 2 segments held ``tokens.npy`` (float16) and int32 ``codes.npy``
    beside the IVF lists; the manifest had no codec. The stored vectors are
    the original ones, as format 2 kept them.
    """
    from pylate_clone.indexes.storage.commit import describe_files

    path = folder / "colbert"
    manifest = json.loads((path / "manifest.json").read_text())
    for record in manifest["segments"]:
        seg = path / record["name"]
        ids = json.loads((seg / "ids.json").read_text())["ids"]
        np.save(
            seg / "tokens.npy",
            np.concatenate([docs_by_id[i] for i in ids]).astype(np.float16),
        )
        np.save(seg / "codes.npy", np.load(seg / "codes.npy").astype(np.int32))
        (seg / "residuals.npy").unlink()
        (seg / "gains.npy").unlink()
        record["files"] = describe_files(seg)
    manifest["version"] = 2
    manifest.pop("codec")
    manifest["params"] = {"dim": manifest["params"]["dim"], "nbits": 4}
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_format_two_plaid_folder_searches_and_compact_converts_it(tmp_path):
    docs = unit_docs(60, seed=33)
    ids = [f"f{i}" for i in range(60)]
    index = make_index("plaid", tmp_path)
    index.add_documents(ids[:30], docs[:30])
    index.add_documents(ids[30:], docs[30:])
    _as_format_two(tmp_path, dict(zip(ids, docs)))
    old = make_index("plaid", tmp_path)
    assert len(old) == 60 and old.num_segments == 2
    # float16 segments return their stored vectors and rank as exact MaxSim
    stored = old.get_documents_embeddings([[ids[4]]])[0][0]
    np.testing.assert_allclose(stored, docs[4], atol=1e-3)
    found = retrieve.ColBERT(index=old).retrieve(docs, k=1)
    assert [r[0]["id"] for r in found] == ids
    # a write adds a compressed segment beside the float16 ones (manifest v3)
    extra = unit_docs(2, seed=34)
    old.add_documents(["g0", "g1"], extra)
    manifest = _manifest(tmp_path)
    assert manifest["version"] == 3 and manifest["codec"] is not None
    folders = [tmp_path / "colbert" / s["name"] for s in manifest["segments"]]
    assert [(f / "tokens.npy").exists() for f in folders] == [True, True, False]
    found = retrieve.ColBERT(index=old).retrieve([*docs[:5], *extra], k=1)
    assert [r[0]["id"] for r in found] == [*ids[:5], "g0", "g1"]
    # compact converts everything to codes
    old.compact()
    manifest = _manifest(tmp_path)
    (record,) = manifest["segments"]
    folder = tmp_path / "colbert" / record["name"]
    assert not (folder / "tokens.npy").exists() and (folder / "residuals.npy").exists()
    reopened = make_index("plaid", tmp_path)
    found = retrieve.ColBERT(index=reopened).retrieve(docs, k=1)
    assert [r[0]["id"] for r in found] == ids
    rebuilt = reopened.get_documents_embeddings([[ids[4]]])[0][0]
    cosine = (rebuilt * docs[4]).sum(1) / np.linalg.norm(rebuilt, axis=1)
    assert cosine.min() > 0.9 and not np.allclose(rebuilt, docs[4], atol=1e-3)


class _PyLateStyleIndex:
    """A custom index as PyLate users write them: __call__ + embeddings only."""

    def __init__(self, ids, docs):
        self.ids, self.docs = ids, docs

    def __call__(self, queries, k=10):
        scores = [[float((q @ d.T).max(1).sum()) for d in self.docs] for q in queries]
        order = [np.argsort(s)[::-1][:k] for s in scores]
        return {
            "documents_ids": [[[self.ids[j] for j in o]] for o in order],
            "distances": [[np.zeros(len(o))] for o in order],
        }

    def get_documents_embeddings(self, document_ids):
        lookup = dict(zip(self.ids, self.docs))
        return [[lookup[i] for i in group] for group in document_ids]


def test_retriever_accepts_a_minimal_custom_index():
    docs = unit_docs(10, seed=33)
    ids = [f"u{i}" for i in range(10)]
    custom = _PyLateStyleIndex(ids, docs)
    results = retrieve.ColBERT(index=custom).retrieve(docs[:3], k=2)
    assert [r[0]["id"] for r in results] == ids[:3]
    subset = retrieve.ColBERT(index=custom).retrieve(docs[:1], k=2, subset=["u0"])
    assert [r["id"] for r in subset[0]] == ["u0"]


@pytest.mark.parametrize("kind", SEGMENTED)
def test_get_documents_embeddings_keyword_and_values(kind, tmp_path):
    docs = unit_docs(5, seed=34)
    index = make_index(kind, tmp_path)
    index.add_documents(list("abcde"), docs)
    got = index.get_documents_embeddings(document_ids=[["b"], ["e", "a"]])
    if kind == "plaid":  # reconstructed from 4-bit codes: close, not equal
        cosine = (got[1][0] * docs[4]).sum(1) / np.linalg.norm(got[1][0], axis=1)
        assert cosine.min() > 0.97
        np.testing.assert_allclose(np.linalg.norm(got[1][0], axis=1), 1, atol=1e-5)
    else:
        np.testing.assert_allclose(got[1][0], docs[4], atol=2e-3)  # float16 store
    assert got[0][0].dtype == np.float32 and got[0][0].shape == docs[1].shape
    with pytest.raises(KeyError, match="'zz'"):
        index.get_documents_embeddings([["zz"]])


def test_empty_folder_listing_is_only_ours(tmp_path):
    index = make_index("exact", tmp_path)
    index.add_documents(["a"], unit_docs(1, seed=35))
    names = sorted(os.listdir(tmp_path / "colbert"))
    assert names[0] == ".readers.lock" or names[0] == ".write.lock"
    assert "manifest.json" in names and any(n.startswith("seg-") for n in names)


def test_garbage_collection_waits_for_readers_opening_files(tmp_path):
    from pylate_clone.indexes.storage.commit import readers_lock

    docs = unit_docs(10, seed=36)
    index = make_index("exact", tmp_path)
    index.add_documents([f"g{i}" for i in range(10)], docs)
    for i in range(3):  # three generations of tombstones of one segment
        index.remove_documents([f"g{i}"])
    folder = tmp_path / "colbert"
    assert len(list(folder.glob("del-*"))) == 2  # the last two manifests' files
    with readers_lock(folder):  # a reader is between manifest and files
        index.remove_documents(["g3"])
        assert len(list(folder.glob("del-*"))) == 3  # nothing deleted meanwhile
    index.remove_documents(["g4"])
    assert len(list(folder.glob("del-*"))) == 2
