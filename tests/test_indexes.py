"""indexes.Voyager / indexes.PLAID and retrieve.ColBERT on seeded random vectors."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from pylate_clone import indexes, rank, retrieve
from pylate_clone.indexes import IndexFormatError

DIM = 16
ROOT = Path(__file__).resolve().parents[1]


def unit_docs(n: int, seed: int, dim: int = DIM, lo: int = 4, hi: int = 12):
    """``n`` documents of ``lo..hi`` random unit vectors."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        m = rng.standard_normal((int(rng.integers(lo, hi)), dim)).astype(np.float32)
        out.append(m / np.linalg.norm(m, axis=1, keepdims=True))
    return out


def make_index(kind: str, folder: Path, **kwargs):
    if kind == "voyager":
        return indexes.Voyager(
            index_folder=folder, embedding_size=DIM, show_progress=False, **kwargs
        )
    if kind == "exact":
        return indexes.Exact(index_folder=folder, show_progress=False, **kwargs)
    if kind == "fast_plaid":
        return indexes.FastPlaid(
            index_folder=folder,
            index_name="colbert",
            device="cpu",
            show_progress=False,
            **kwargs,
        )
    return indexes.PLAID(
        index_folder=folder, device="cpu", show_progress=False, **kwargs
    )


def exact(ids, docs, queries, k=10):
    """Exhaustive MaxSim ranking with rank.rerank (the reference)."""
    ranked = rank.rerank(
        [list(ids)] * len(queries), queries, [list(docs)] * len(queries)
    )
    return [r[:k] for r in ranked]


def top_ids(results):
    return [[r["id"] for r in rs] for rs in results]


KINDS = ["voyager", "plaid", "exact", "fast_plaid"]
SEGMENTED = ["voyager", "plaid", "exact"]


@pytest.fixture(scope="module")
def collection():
    ids = [f"d{i}" for i in range(30)] + list(range(100, 130))  # str and int ids
    return ids, unit_docs(60, seed=1)


@pytest.mark.parametrize("kind", KINDS)
def test_add_search_remove_add_reload(kind, tmp_path, collection):
    ids, docs = collection
    index = make_index(kind, tmp_path)
    retriever = retrieve.ColBERT(index=index)
    index.add_documents(ids[:40], docs[:40])
    assert len(index) == 40

    # Each document, used as its own query, ranks first.
    results = retriever.retrieve(docs[:40], k=5)
    assert [rs[0]["id"] for rs in results] == ids[:40]
    for rs in results:
        assert len(rs) == 5 and len({r["id"] for r in rs}) == 5
        assert set(rs[0]) == {"id", "score"}
        assert all(a["score"] >= b["score"] for a, b in zip(rs, rs[1:]))

    removed = ["d3", "d17", 100, 105]
    index.remove_documents(removed)
    assert len(index) == 36
    results = retriever.retrieve(docs[:40], k=40)
    for rs in results:
        assert not set(removed) & {r["id"] for r in rs}
        assert len(rs) == 36 or kind == "fast_plaid"
    kept = [i for i in ids[:40] if i not in removed]
    kept_docs = [d for i, d in zip(ids[:40], docs[:40]) if i not in removed]
    assert [rs[0]["id"] for rs in retriever.retrieve(kept_docs, k=3)] == kept

    # Add more, replacing "d5" with new vectors.
    index.add_documents(ids[40:] + ["d5"], docs[40:] + [docs[59]])
    assert len(index) == 36 + 20
    final_ids = [i for i in ids if i not in removed]
    expected = retriever.retrieve(docs[:1] + docs[41:45], k=5)
    assert [rs[0]["id"] for rs in expected][1:] == ids[41:45]

    # Reload in a new process and search again.
    script = textwrap.dedent(
        f"""
        import json, sys, numpy as np
        sys.path.insert(0, {str(ROOT)!r})
        from pylate_clone import indexes, retrieve
        from tests.test_indexes import make_index, unit_docs
        docs = unit_docs(60, seed=1)
        index = make_index({kind!r}, {str(tmp_path)!r})
        out = retrieve.ColBERT(index=index).retrieve(docs[:1] + docs[41:45], k=5)
        print(json.dumps({{"ids": index.documents_ids, "results": out}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    reloaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(map(str, reloaded["ids"])) == sorted(map(str, final_ids))
    assert {type(i) for i in reloaded["ids"]} == {str, int}
    assert top_ids(reloaded["results"]) == top_ids(expected)
    for got, want in zip(reloaded["results"], expected):
        np.testing.assert_allclose(
            [r["score"] for r in got], [r["score"] for r in want], rtol=1e-5
        )

    if kind == "voyager":
        # Reranked scores are exact MaxSim over the float16 store.
        ref = exact(
            final_ids,
            [docs[59] if i == "d5" else docs[ids.index(i)] for i in final_ids],
            docs[:1] + docs[41:45],
            k=5,
        )
        assert top_ids(ref) == top_ids(expected)
        for got, want in zip(expected, ref):
            np.testing.assert_allclose(
                [r["score"] for r in got], [r["score"] for r in want], atol=5e-3
            )


@pytest.mark.parametrize("kind", KINDS)
def test_replaced_document_old_vectors_gone(kind, tmp_path):
    docs = unit_docs(12, seed=2)
    index = make_index(kind, tmp_path)
    index.add_documents([str(i) for i in range(10)], docs[:10])
    index.add_documents(["0"], docs[10])  # single 2-D matrix = one document
    results = retrieve.ColBERT(index=index).retrieve([docs[0], docs[10]], k=10)
    assert results[1][0]["id"] == "0"
    assert results[0][0]["id"] != "0"
    assert all(len({r["id"] for r in rs}) == len(rs) for rs in results)
    assert len(index) == 10


@pytest.mark.parametrize("kind", KINDS)
def test_override_semantics(kind, tmp_path):
    docs = unit_docs(6, seed=3)
    folder = tmp_path / "root"
    index = make_index(kind, folder)  # missing folder: created, empty
    assert len(index) == 0 and (folder / "colbert" / "manifest.json").exists()
    index.add_documents(["a", "b", "c"], docs[:3])
    assert make_index(kind, folder).documents_ids == ["a", "b", "c"]  # loads
    fresh = make_index(kind, folder, override=True)
    assert len(fresh) == 0
    assert len(make_index(kind, folder)) == 0
    with pytest.raises(ValueError, match="empty"):
        fresh(docs[0], k=1)


def test_ids_keep_their_type(tmp_path):
    docs = unit_docs(2, seed=4)
    index = make_index("voyager", tmp_path)
    index.add_documents([1, "1"], docs)
    reloaded = make_index("voyager", tmp_path)
    assert reloaded.documents_ids == [1, "1"]
    assert 1 in reloaded and "1" in reloaded
    with pytest.raises(TypeError):
        index.add_documents([1.5], docs[:1])


@pytest.mark.parametrize("kind", KINDS)
def test_bad_inputs(kind, tmp_path, caplog):
    docs = unit_docs(12, seed=5)
    index = make_index(kind, tmp_path)
    retriever = retrieve.ColBERT(index=index)
    with pytest.raises(ValueError, match="empty"):
        index.add_documents([], [])
    with pytest.raises(ValueError, match="one entry per document"):
        index.add_documents(["a", "b"], docs[:3])
    with pytest.raises(ValueError, match="repeats"):
        index.add_documents(["a", "a"], docs[:2])
    index.add_documents([f"x{i}" for i in range(10)], docs[:10])
    wrong_dim = [np.ones((3, DIM + 2), dtype=np.float32)]
    with pytest.raises(ValueError, match="dimension"):
        index.add_documents(["y"], wrong_dim)
    with pytest.raises(ValueError, match="dimension"):
        retriever.retrieve(wrong_dim, k=3)
    with pytest.raises(
        ValueError,
        match=rf"queries_embeddings\[1\] has dimension {DIM + 2}, expected {DIM}",
    ):
        retriever.retrieve([docs[0], wrong_dim[0]], k=3)
    with pytest.raises(ValueError, match="k must be"):
        retriever.retrieve(docs[:1], k=0)
    with pytest.raises(ValueError, match="k must be"):
        retriever.retrieve(docs[:1], k=-1)
    with pytest.raises(ValueError, match="empty"):
        retriever.retrieve([], k=3)
    with pytest.raises(ValueError, match="no token vectors"):
        index.add_documents(["z"], [np.ones((0, DIM), dtype=np.float32)])
    # k larger than the collection returns every document once.
    results = retriever.retrieve(docs[:2], k=50)
    assert all(
        sorted(r["id"] for r in rs) == sorted(f"x{i}" for i in range(10))
        for rs in results
    )
    # PyLate semantics: unknown ids are skipped by remove_documents (with a
    # warning naming them) and added by update_documents.
    with caplog.at_level(logging.WARNING, logger="pylate_clone.indexes.base"):
        index.remove_documents(["x1", "nope", "nada"])
    assert "2 id(s)" in caplog.text and "'nope'" in caplog.text
    assert len(index) == 9 and "x1" not in index
    index.update_documents(["x2", "new"], docs[10:12])
    assert len(index) == 10 and "new" in index
    hits = retriever.retrieve(docs[10:12], k=1)
    assert [h[0]["id"] for h in hits] == ["x2", "new"]


@pytest.mark.parametrize(
    "make",
    [
        lambda f: indexes.Voyager(index_folder=f, M=0),
        lambda f: indexes.Voyager(index_folder=f, M=1),
        lambda f: indexes.Voyager(index_folder=f, embedding_size=0),
        lambda f: indexes.Voyager(index_folder=f, ef_search=-3),
        lambda f: indexes.Voyager(index_folder=f, ef_construction=True),
        lambda f: indexes.PLAID(index_folder=f, nbits=0),
        lambda f: indexes.PLAID(index_folder=f, nbits=3),
        lambda f: indexes.PLAID(index_folder=f, kmeans_niters=0),
        lambda f: indexes.PLAID(index_folder=f, n_ivf_probe=0),
        lambda f: indexes.PLAID(index_folder=f, n_full_scores=-1),
        lambda f: indexes.PLAID(index_folder=f, use_fast=False),
    ],
)
def test_parameters_validated_before_native_code(make, tmp_path):
    with pytest.raises(ValueError):
        make(tmp_path)
    assert not (tmp_path / "colbert").exists()


def test_plaid_stanford_kwargs_warn(tmp_path):
    with pytest.warns(FutureWarning):
        indexes.PLAID(index_folder=tmp_path, ncells=4, device="cpu")


@pytest.mark.parametrize("kind", KINDS)
def test_agrees_with_exhaustive_rerank(kind, tmp_path):
    docs = unit_docs(120, seed=6)
    queries = [
        d[:4] + 0.3 * unit_docs(1, seed=100 + i, lo=4, hi=5)[0]
        for i, d in enumerate(docs[:12])
    ]
    ids = [f"doc{i}" for i in range(len(docs))]
    extra = {"ef_search": 1000} if kind == "voyager" else {}
    index = make_index(kind, tmp_path, **extra)
    index.add_documents(ids, docs)
    got = retrieve.ColBERT(index=index).retrieve(queries, k=10)
    if kind == "plaid":
        # PLAID scores its codes: exactly a rerank of the reconstructed vectors
        # (an exact scan at this size), close to a rerank of the originals.
        rebuilt = index.get_documents_embeddings([ids])[0]
        ref = exact(ids, rebuilt, queries, k=10)
        assert top_ids(got) == top_ids(ref)
        for g, r in zip(got, ref):
            np.testing.assert_allclose(
                [x["score"] for x in g], [x["score"] for x in r], atol=1e-4
            )
        original = exact(ids, docs, queries, k=10)
        overlaps = [
            len(set(a) & set(b)) for a, b in zip(top_ids(got), top_ids(original))
        ]
        assert np.mean(overlaps) >= 9, overlaps
        return
    ref = exact(ids, docs, queries, k=10)
    if kind != "fast_plaid":
        # Voyager and Exact score their float16 store; PLAID reconstructs
        # from codes (an exact scan at this size), hence the tolerance.
        assert top_ids(got) == top_ids(ref)
        for g, r in zip(got, ref):
            np.testing.assert_allclose(
                [x["score"] for x in g],
                [x["score"] for x in r],
                atol=5e-3,
            )
    else:
        overlaps = [
            len(set(top_ids([g])[0]) & set(top_ids([r])[0])) for g, r in zip(got, ref)
        ]
        assert min(overlaps) >= 7 and np.mean(overlaps) >= 8.5, overlaps
        assert [g[0]["id"] for g in got] == [r[0]["id"] for r in ref]


@pytest.mark.parametrize("kind", KINDS)
def test_subset(kind, tmp_path):
    docs = unit_docs(80, seed=7)
    ids = [f"s{i}" for i in range(80)]
    index = make_index(kind, tmp_path)
    index.add_documents(ids, docs)
    retriever = retrieve.ColBERT(index=index)
    # Shared subset far from the queries: Voyager's token candidates miss it,
    # yet k results come back (exact fallback over the subset).
    subset = ids[60:75] + ["unknown"]
    results = retriever.retrieve(docs[:3], k=10, subset=subset)
    ref = exact(ids[60:75], docs[60:75], docs[:3], k=10)
    for rs, want in zip(results, ref):
        assert len(rs) == 10
        assert {r["id"] for r in rs} <= set(subset)
        if kind in ("voyager", "exact"):
            assert [r["id"] for r in rs] == [r["id"] for r in want]
    # One subset per query.
    per_query = [["s1", "s2"], ["s5"], []]
    results = retriever.retrieve(docs[:3], k=5, subset=per_query)
    assert [sorted(r["id"] for r in rs) for rs in results] == [["s1", "s2"], ["s5"], []]
    with pytest.raises(ValueError, match="queries"):
        retriever.retrieve(docs[:3], k=5, subset=[["s1"], ["s2"]])
    # Subset smaller than k: all of it.
    results = retriever.retrieve(docs[:1], k=10, subset=["s7", "s8"])
    assert sorted(r["id"] for r in results[0]) == ["s7", "s8"]


def test_voyager_token_hits_format(tmp_path):
    docs = unit_docs(5, seed=8)
    index = make_index("voyager", tmp_path)
    index.add_documents(["a", "b", "c", "d", "e"], docs)
    hits = index(docs[:2], k=3)
    assert set(hits) == {"documents_ids", "distances"}
    assert len(hits["documents_ids"]) == 2
    assert len(hits["documents_ids"][0]) == len(docs[0])
    assert hits["documents_ids"][0][0][0] == "a"
    # Cosine distance to the graph's 8-bit copy of the same vector.
    assert abs(float(hits["distances"][0][0][0])) < 0.05
    embs = index.get_documents_embeddings([["b"], ["a", "c"]])
    np.testing.assert_allclose(embs[1][1], docs[2], atol=2e-3)  # float16 store
    assert embs[0][0].shape == docs[1].shape
    with pytest.raises(KeyError):
        index.get_documents_embeddings([["zz"]])
    # Tensors are accepted too, and a 3-D tensor is a batch.
    padded = torch.zeros(2, 12, DIM)
    padded[0, : len(docs[0])] = torch.from_numpy(docs[0])
    padded[1, : len(docs[1])] = torch.from_numpy(docs[1])
    results = retrieve.ColBERT(index=index).retrieve(padded, k=2)
    assert [rs[0]["id"] for rs in results] == ["a", "b"]


def _no_pickle_anywhere(folder: Path) -> None:
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        assert path.suffix != ".pkl", path
        if path.suffix == ".npy":
            np.load(path, allow_pickle=False)  # raises on object (pickled) arrays
        head = path.read_bytes()[:2]
        assert head not in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"), path


@pytest.mark.parametrize("kind", KINDS)
def test_no_pickle_and_corruption_named(kind, tmp_path):
    docs = unit_docs(30, seed=9)
    index = make_index(kind, tmp_path)
    index.add_documents([f"p{i}" for i in range(20)], docs[:20])
    index.add_documents(
        [f"p{i}" for i in range(20, 30)], docs[20:]
    )  # fast-plaid buffer
    index.remove_documents(["p3"])
    folder = tmp_path / "colbert"
    _no_pickle_anywhere(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    if kind == "fast_plaid":
        generation = folder / manifest["directory"]
    else:  # the oldest segment: the first add_documents
        generation = folder / manifest["segments"][0]["name"]
    # Truncate the largest payload file: the error names it.
    victim = max(
        (p for p in generation.rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexFormatError, match=victim.name):
        make_index(kind, tmp_path)
    victim.write_bytes(data)
    make_index(kind, tmp_path)
    # Foreign (non-JSON) ids file.
    (generation / "ids.json").write_bytes(b"\x80\x04garbage")
    with pytest.raises(IndexFormatError, match="ids.json"):
        make_index(kind, tmp_path)
    # Truncated manifest.
    raw = (folder / "manifest.json").read_bytes()
    (folder / "manifest.json").write_bytes(raw[:40])
    with pytest.raises(IndexFormatError, match="manifest.json"):
        make_index(kind, tmp_path)


def test_foreign_folder_refused(tmp_path):
    folder = tmp_path / "colbert"
    folder.mkdir()
    (folder / "document_ids_to_embeddings.pkl").write_bytes(b"\x80\x04.")
    with pytest.raises(IndexFormatError, match="document_ids_to_embeddings.pkl"):
        make_index("voyager", tmp_path)
    with pytest.raises(IndexFormatError, match="voyager"):
        # A folder written by the other index type is refused too.
        make_index("voyager", tmp_path / "x")
        make_index("plaid", tmp_path / "x")
    index = make_index("voyager", tmp_path, override=True)  # override replaces it
    assert len(index) == 0


@pytest.mark.parametrize("kind", ["plaid", "fast_plaid"])
def test_plaid_renumbering_survives_any_sequence(kind, tmp_path):
    docs = unit_docs(40, seed=10)
    ids = [f"r{i}" for i in range(40)]
    index = make_index(kind, tmp_path)
    present: dict = {}
    rng = np.random.default_rng(0)
    order = list(range(40))
    index.add_documents([ids[i] for i in order[:15]], [docs[i] for i in order[:15]])
    present.update({ids[i]: i for i in order[:15]})
    for step, chunk in enumerate([order[15:25], order[25:40]]):
        gone = list(rng.choice(sorted(present), size=4, replace=False))
        index.remove_documents(gone)
        for g in gone:
            present.pop(g)
        index.add_documents([ids[i] for i in chunk], [docs[i] for i in chunk])
        present.update({ids[i]: i for i in chunk})
        if step == 0:
            index = make_index(kind, tmp_path)  # reload mid-sequence
    assert sorted(index.documents_ids) == sorted(present)
    names = sorted(present)
    results = retrieve.ColBERT(index=index).retrieve(
        [docs[present[n]] for n in names], k=1
    )
    assert [rs[0]["id"] for rs in results] == names


@pytest.mark.parametrize("kind", KINDS)
def test_stale_writer_reloads_and_loses_nothing(kind, tmp_path):
    docs = unit_docs(24, seed=11)
    first = make_index(kind, tmp_path)
    second = make_index(kind, tmp_path)
    first.add_documents([f"a{i}" for i in range(12)], docs[:12])
    # `second` was opened before that commit: it reloads under the lock.
    second.add_documents([f"b{i}" for i in range(12)], docs[12:])
    expected = {f"a{i}" for i in range(12)} | {f"b{i}" for i in range(12)}
    assert set(make_index(kind, tmp_path).documents_ids) == expected
    assert set(first.documents_ids) == expected  # readers reload themselves too


@pytest.mark.parametrize("kind", KINDS)
def test_replace_every_document_then_remove_all(kind, tmp_path):
    docs = unit_docs(8, seed=12)
    index = make_index(kind, tmp_path)
    index.add_documents(["a", "b", "c", "d"], docs[:4])
    index.update_documents(["a", "b", "c", "d"], docs[4:])
    results = retrieve.ColBERT(index=index).retrieve(docs[4:], k=1)
    assert [rs[0]["id"] for rs in results] == ["a", "b", "c", "d"]
    index.remove_documents(["a", "b", "c", "d"])
    assert len(make_index(kind, tmp_path)) == 0
    with pytest.raises(ValueError, match="empty"):
        index(docs[0], k=1)
    if kind == "fast_plaid":
        with pytest.raises(ValueError, match="token vectors"):
            index.add_documents(["e"], docs[0][:2])  # too small to train a codec
        assert len(index) == 0
    index.add_documents(["e", "f", "g"], docs[:3])
    assert retrieve.ColBERT(index=index).retrieve(docs[0], k=3)[0][0]["id"] == "e"


def test_shared_docstring_fragments_are_filled():
    # indexes/_docs.py fills the "%(name)s" lines; a typo must fail loudly.
    from pylate_clone.indexes._docs import fill_doc

    for documented in (
        indexes.Base,
        indexes.Exact,
        indexes.FastPlaid,
        indexes.PLAID.__call__,
        indexes.FastPlaid.__call__,
    ):
        assert "%(" not in documented.__doc__
        assert "\n    index_folder\n" in documented.__doc__ or (
            "\n        queries_embeddings\n" in documented.__doc__
        )

    def typo() -> None:
        """Search.

        %(serach)s
        """

    with pytest.raises(KeyError, match="serach"):
        fill_doc(typo)
