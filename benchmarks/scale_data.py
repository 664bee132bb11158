"""Data of the scale benchmark: SciFact at 1x, 10x and 30x, queries, exact top-10.

Imports only numpy and the standard library at module level, so the PyLate
1.6.0 reference venv (which does not have ``pylate_clone``) can import it.

Files under ``benchmarks/.cache/`` (made once, then reused):

- ``scifact_docs.flat.npy`` / ``.lengths.npy``: the real SciFact embeddings,
  made by ``benchmarks/index.py`` (never re-encoded here).
- ``scifact_x{S}_docs.f16.npy`` / ``.lengths.npy`` (S = 10, 30): S x SciFact,
  the real documents first, then synthetic ones. A synthetic document is a span of one
  real document followed by a span of another (seeded), so its token
  statistics, length distribution and topical mixing look like real text.
  Stored as float16 (half the disk and page cache); every system gets the
  same float32 conversion of it.
- ``scale_queries.flat.npy`` / ``.lengths.npy``: the 300 SciFact test
  queries, then pseudo queries: 32-token spans of random real documents plus
  Gaussian noise, renormalised (seeded). The same queries serve both scales.
- ``scifact_x{S}[_limit{L}][_step{N}]_exact.npy``: exact MaxSim top-10
  document numbers of every query (of every N-th query with a step), the
  ground truth of recall@10.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"
N_PSEUDO = 100
PSEUDO_LENGTH = 32
PSEUDO_NOISE = 0.3
SEED = 12


def _real() -> tuple[np.ndarray, np.ndarray]:
    flat = np.load(CACHE / "scifact_docs.flat.npy", mmap_mode="r")
    lengths = np.load(CACHE / "scifact_docs.lengths.npy")
    return flat, lengths.astype(np.int64)


def real_doc_ids() -> list[str]:
    """SciFact corpus ids in file order (the order of the cached embeddings)."""
    import json
    import os

    shared = Path(os.environ.get("PYLATE_CLONE_SHARED", ROOT.parent / "shared"))
    with open(shared / "data" / "scifact" / "corpus.jsonl") as handle:
        return [str(json.loads(line)["_id"]) for line in handle if line.strip()]


#: Scales past 1x, made from real SciFact as described above.
SYNTHETIC_SCALES = (10, 30)


def _make_scaled(scale: int) -> None:
    """Write ``scifact_x{scale}_docs.f16.npy`` (the seeded draws of 10x are
    the same as before scales were general, so its file does not change)."""
    flat, lengths = _real()
    n_real = len(lengths)
    n_syn = (scale - 1) * n_real
    offsets = np.zeros(n_real + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    rng = np.random.default_rng(SEED)
    pairs = rng.integers(0, n_real, size=(n_syn, 2))
    share = rng.uniform(0.3, 0.7, size=n_syn)
    span_a = np.maximum(1, np.round(share * lengths[pairs[:, 0]])).astype(np.int64)
    span_b = np.maximum(1, np.round((1 - share) * lengths[pairs[:, 1]])).astype(
        np.int64
    )
    start_a = offsets[pairs[:, 0]] + (
        rng.random(n_syn) * (lengths[pairs[:, 0]] - span_a + 1)
    ).astype(np.int64)
    start_b = offsets[pairs[:, 1]] + (
        rng.random(n_syn) * (lengths[pairs[:, 1]] - span_b + 1)
    ).astype(np.int64)
    syn_lengths = span_a + span_b
    all_lengths = np.concatenate([lengths, syn_lengths])
    total = int(all_lengths.sum())
    tmp = CACHE / f"scifact_x{scale}_docs.f16.npy.tmp"
    out = np.lib.format.open_memmap(
        tmp, mode="w+", dtype=np.float16, shape=(total, flat.shape[1])
    )
    block = 1 << 20
    for s in range(0, offsets[-1], block):
        e = min(s + block, int(offsets[-1]))
        out[s:e] = flat[s:e]
    row = int(offsets[-1])
    for a, la, b, lb in zip(start_a, span_a, start_b, span_b):
        out[row : row + la] = flat[a : a + la]
        out[row + la : row + la + lb] = flat[b : b + lb]
        row += la + lb
    out.flush()
    del out
    np.save(CACHE / f"scifact_x{scale}_docs.lengths.npy", all_lengths)
    tmp.rename(CACHE / f"scifact_x{scale}_docs.f16.npy")


def collection(scale: int, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(tokens (T, D) memmap, lengths (N,) int64)`` of one scale.

    ``limit`` keeps the first ``limit`` documents (small plumbing runs).
    """
    if scale == 1:
        flat, lengths = _real()
    elif scale in SYNTHETIC_SCALES:
        if not (CACHE / f"scifact_x{scale}_docs.f16.npy").exists():
            _make_scaled(scale)
        flat = np.load(CACHE / f"scifact_x{scale}_docs.f16.npy", mmap_mode="r")
        lengths = np.load(CACHE / f"scifact_x{scale}_docs.lengths.npy")
    else:
        raise ValueError(f"scale must be 1, 10 or 30, got {scale}.")
    if limit is not None:
        lengths = lengths[:limit]
        flat = flat[: int(lengths.sum())]
    return flat, lengths


def doc_ids(scale: int, limit: int | None = None) -> list[str]:
    real = real_doc_ids()
    synthetic = [f"syn-{i}" for i in range((scale - 1) * len(real))]
    ids = real + synthetic
    return ids if limit is None else ids[:limit]


def documents(scale: int, limit: int | None = None) -> list[np.ndarray]:
    """The collection as a list of float32 ``(L_j, D)`` matrices (views of one array)."""
    flat, lengths = collection(scale, limit)
    flat = np.asarray(flat, dtype=np.float32)
    return np.split(flat, np.cumsum(lengths)[:-1])


def document_batches(
    scale: int, limit: int | None = None, start: int = 0, stop: int | None = None,
    batch_docs: int = 2000,
):  # fmt: skip
    """Yield ``(ids, float32 matrices)`` of documents ``[start, stop)``, a batch
    at a time, read from the memory map: bounded memory at any scale."""
    flat, lengths = collection(scale, limit)
    ids = doc_ids(scale, limit)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    stop = len(lengths) if stop is None else stop
    for a in range(start, stop, batch_docs):
        b = min(a + batch_docs, stop)
        block = np.asarray(flat[offsets[a] : offsets[b]], dtype=np.float32)
        yield ids[a:b], np.split(block, np.cumsum(lengths[a:b])[:-1])


def queries() -> list[np.ndarray]:
    """The 300 test queries then ``N_PSEUDO`` pseudo queries, float32 matrices."""
    path = CACHE / "scale_queries.flat.npy"
    if not path.exists():
        test = np.load(CACHE / "scifact_queries.flat.npy")
        test_lengths = np.load(CACHE / "scifact_queries.lengths.npy")
        flat, lengths = _real()
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        rng = np.random.default_rng(SEED + 1)
        pseudo = []
        for j in rng.choice(len(lengths), size=N_PSEUDO, replace=False):
            span = min(PSEUDO_LENGTH, int(lengths[j]))
            start = offsets[j] + int(rng.integers(0, lengths[j] - span + 1))
            q = np.asarray(flat[start : start + span], dtype=np.float32)
            q = q + rng.normal(0, PSEUDO_NOISE / np.sqrt(q.shape[1]), q.shape)
            pseudo.append((q / np.linalg.norm(q, axis=1, keepdims=True)))
        all_lengths = np.concatenate([test_lengths, [len(q) for q in pseudo]])
        all_flat = np.concatenate([test, *pseudo]).astype(np.float32)
        np.save(CACHE / "scale_queries.lengths.npy", all_lengths.astype(np.int64))
        np.save(path, all_flat)
    flat = np.load(path)
    lengths = np.load(CACHE / "scale_queries.lengths.npy")
    return np.split(flat, np.cumsum(lengths)[:-1])


def exact_top10(scale: int, limit: int | None = None, step: int = 1) -> np.ndarray:
    """``(Q / step, 10)`` document numbers of the exact MaxSim top-10 of every
    ``step``-th query, cached.

    True MaxSim (a document's real tokens only), the semantics of
    ``pylate_clone.scores.kernels.maxsim.maxsim_flat``.
    """
    tag = f"scifact_x{scale}" + ("" if limit is None else f"_limit{limit}")
    if step > 1 and (CACHE / f"{tag}_exact.npy").exists():
        return np.load(CACHE / f"{tag}_exact.npy")[::step]
    path = CACHE / (f"{tag}_exact.npy" if step == 1 else f"{tag}_step{step}_exact.npy")
    if path.exists():
        return np.load(path)
    from pylate_clone.scores.kernels.maxsim import maxsim_flat

    tokens, lengths = collection(scale, limit)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    qs = queries()[::step]
    scores = maxsim_flat(qs, tokens, offsets)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    np.save(path, top)
    return top
