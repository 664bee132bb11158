"""Index benchmark at scale: SciFact (5,183 documents), 10x (51,830) and 30x (155,490).

Systems (each in its own child process, so peak RSS is per system):

- ``pylate-plaid``: PyLate 1.6.0's PLAID at the defaults it ships, run with
  the reference venv's interpreter (``--pylate-python``).
- ``pylate-voyager``: PyLate 1.6.0's ``indexes.Voyager`` at its defaults and
  its ``retrieve.ColBERT`` rerank, in the reference venv too.
- ``pylate-warp``: PyLate 1.6.0's ``indexes.WARP`` (xtr-warp-rs) at its
  defaults but ``num_threads`` = all cores, in the reference venv too.
- ``plaid``: ``pylate_clone.indexes.PLAID`` at its defaults (``nbits=4``).
- ``plaid-2bit``: ``pylate_clone.indexes.PLAID(nbits=2)``.
- ``voyager``: ``pylate_clone.indexes.Voyager`` + ``retrieve.ColBERT`` rerank.
- ``exact``: ``pylate_clone.indexes.Exact`` (exhaustive MaxSim).

Every system gets the same float32 vectors (``benchmarks/scale_data.py``).
At 30x (about 24M token vectors, 12 GB as float32) only our systems run, and
they are built from a stream of 2,000-document batches read from the float16
memory map (bounded memory: the peak RSS column shows it); use
``--query-step`` there, since exact MaxSim over every query costs minutes.
Measured: build s (all documents but 20 in one ``add_documents``), "+20
docs" s, peak RSS (and the RSS of the loaded vectors alone), bytes per token
on disk (the whole index folder / tokens), p50 / p95 latency one query per
call (every 4th query), QPS one query per call, QPS for all queries in one
call and in calls of 32 queries, recall@10 against exact MaxSim (ties at the 10th score count as hits), "-10 docs" s.

Results are cached per system and scale as JSON under
``benchmarks/.cache/scale_results/``; a re-run only redoes what is missing
(``--force`` redoes the named ones). ``--timeout-s`` stops a system that
runs longer and records the stage it had reached. ``--our-path`` runs our
systems against another checkout of ``pylate_clone``. After the table, the
figures go to ``benchmarks/results/index_scale.json`` and, with matplotlib
(the ``bench`` extra), to the PNG charts of ``benchmarks/charts.py`` in
``docs/images/`` (a ``--limit`` run writes both under the cache instead).
Usage::

    python benchmarks/index_scale.py                          # everything
    python benchmarks/index_scale.py --scales 1 --systems exact,plaid
    python benchmarks/index_scale.py --limit 300 --scales 1   # plumbing check
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import charts  # noqa: E402
import scale_data  # noqa: E402

SYSTEMS = (
    "pylate-warp",
    "pylate-plaid",
    "pylate-voyager",
    "plaid",
    "plaid-2bit",
    "voyager",
    "exact",
)
PYLATE_SYSTEMS = ("pylate-warp", "pylate-plaid", "pylate-voyager")
#: Scales built from a stream of batches (only our systems accept that).
STREAMED_SCALES = (30,)
BATCH = 32
ROOT = Path(__file__).resolve().parents[1]
PYLATE_PYTHON = os.environ.get("PYLATE_PYTHON", "/tmp/pylate-1.6/bin/python")
RESULTS = scale_data.CACHE / "scale_results"
K = 10
ADD, REMOVE = 20, 10


def _rss_mb() -> float:
    """Peak RSS of this process in MB.

    Linux's ``VmHWM`` first: a child's ``ru_maxrss`` starts at its parent's
    peak (it survives fork and exec), so a child started after the parent
    wrote the 30x file through a memory map reported the parent's 6 GB.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- one system (child process) -----------------------------------------------------


def _open_system(name: str, folder: Path):
    """``(add(ids, docs), remove(ids), search(queries) -> ids per query)``."""
    if name == "pylate-plaid":
        from pylate import indexes

        index = indexes.PLAID(
            index_folder=str(folder), index_name="bench", override=True,
            show_progress=False,
        )  # fmt: skip
        return _index_api(index, lambda qs: index(qs, k=K))
    if name == "pylate-voyager":
        from pylate import indexes, retrieve

        index = indexes.Voyager(
            index_folder=str(folder), index_name="bench", override=True,
        )  # fmt: skip
        retriever = retrieve.ColBERT(index=index)
        return _index_api(
            index, lambda qs: retriever.retrieve(queries_embeddings=qs, k=K)
        )
    if name == "pylate-warp":
        from pylate import indexes

        index = indexes.WARP(
            index_folder=str(folder), index_name="bench", override=True,
            num_threads=os.cpu_count(), show_progress=False,
        )  # fmt: skip
        return _index_api(index, lambda qs: index(qs, k=K))
    if name in ("plaid", "plaid-2bit", "voyager"):
        from pylate_clone import indexes, retrieve

        if name.startswith("plaid"):
            index = indexes.PLAID(
                index_folder=folder,
                override=True,
                show_progress=False,
                nbits=2 if name == "plaid-2bit" else 4,
            )
            return _index_api(index, lambda qs: index(qs, k=K))
        index = indexes.Voyager(index_folder=folder, override=True, show_progress=False)
        retriever = retrieve.ColBERT(index=index)
        return _index_api(index, lambda qs: retriever.retrieve(qs, k=K))
    if name == "exact":
        from pylate_clone import indexes

        index = indexes.Exact(index_folder=folder, override=True)
        return _index_api(index, lambda qs: index(qs, k=K))
    raise ValueError(f"unknown system {name!r}; known: {SYSTEMS}")


def _index_api(index, search):
    def add(ids, docs=None):
        # Without ``docs``, ``ids`` is an iterable of ``(ids, embeddings)``
        # batches: our indexes' streamed (bounded-memory) write.
        if docs is None:
            index.add_documents(ids)
        else:
            index.add_documents(ids, docs)

    def remove(ids):
        index.remove_documents(ids)

    def run(qs):
        return [[r["id"] for r in hits] for hits in search(qs)]

    return add, remove, run


def _stage(path: Path | None, stage: str, **figures) -> None:
    """Record the stage reached (and the figures so far), so a run stopped by
    the timeout can say where it stopped and what it had measured."""
    if path is not None:
        path.write_text(json.dumps({"stage": stage, "t": time.time(), **figures}))


def timed_build(add, ids: list, docs: list | None, scale: int = 1, limit=None):
    """Seconds to add all documents but the last ``ADD`` in one call, then those.

    With ``docs`` None the documents are streamed in batches from the
    scale's memory map (``scale_data.document_batches``) instead.
    """
    n_first = len(ids) - ADD
    parts = [(0, n_first), (n_first, len(ids))]
    seconds = []
    for a, b in parts:
        start = time.perf_counter()
        if docs is None:
            add(scale_data.document_batches(scale, limit, a, b))
        else:
            add(ids[a:b], docs[a:b])
        seconds.append(time.perf_counter() - start)
    return seconds[0], seconds[1]


def run_system(
    name: str,
    scale: int,
    limit: int | None,
    workdir: Path,
    query_step: int = 1,
    stage_file: Path | None = None,
) -> dict:
    _stage(stage_file, "loading vectors")
    ids = scale_data.doc_ids(scale, limit)
    streamed = scale in STREAMED_SCALES
    docs = None if streamed else scale_data.documents(scale, limit)
    all_qs = scale_data.queries()
    # A slow system may run QPS and recall on every ``query_step``-th query
    # only; latency always uses the same every-4th-query sample.
    qs = all_qs[::query_step]
    rss_data = _rss_mb()
    n_tokens = int(scale_data.collection(scale, limit)[1].sum())
    folder = workdir / name
    add, remove, run = _open_system(name, folder)

    _stage(stage_file, "build")
    build_s, add_s = timed_build(add, ids, docs, scale, limit)
    disk = _folder_bytes(workdir)
    done = {"build_s": build_s, "add20_s": add_s, "bytes_per_token": disk / n_tokens}
    _stage(stage_file, "queries one per call", **done)

    run(qs[:4])  # warm up (lazy loads, thread pools)
    latencies = []
    for q in all_qs[::4]:
        start = time.perf_counter()
        run([q])
        latencies.append(time.perf_counter() - start)
    done["p50_ms"] = 1000 * float(np.percentile(latencies, 50))
    _stage(stage_file, f"queries, {len(qs)} in one call", **done)
    start = time.perf_counter()
    results = run(qs)
    batch_s = time.perf_counter() - start
    _stage(stage_file, f"queries, calls of {BATCH}", **done)
    start = time.perf_counter()
    for s in range(0, len(qs), BATCH):
        run(qs[s : s + BATCH])
    batch32_s = time.perf_counter() - start
    _stage(stage_file, "remove 10 docs", **done)
    step = max(1, len(ids) // REMOVE)
    start = time.perf_counter()
    remove([ids[j] for j in range(0, len(ids), step)][:REMOVE])
    remove_s = time.perf_counter() - start
    return {
        "system": name,
        "scale": scale,
        "limit": limit,
        "query_step": query_step,
        "documents": len(ids),
        "tokens": n_tokens,
        "build_s": build_s,
        "add20_s": add_s,
        "remove10_s": remove_s,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p95_ms": 1000 * float(np.percentile(latencies, 95)),
        "qps_single": 1.0 / float(np.mean(latencies)),
        "qps": len(qs) / batch_s,
        "qps_batch32": len(qs) / batch32_s,
        "bytes_per_token": disk / n_tokens,
        "peak_rss_mb": _rss_mb(),
        "data_rss_mb": rss_data,
        "load": os.getloadavg(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "results": results,
    }


# -- driver ---------------------------------------------------------------------------


def _result_path(name: str, scale: int, limit: int | None) -> Path:
    tag = f"{name}_x{scale}" + ("" if limit is None else f"_limit{limit}")
    return RESULTS / f"{tag}.json"


def _run_child(
    name: str,
    scale: int,
    limit: int | None,
    python: str,
    query_step: int = 1,
    timeout_s: float | None = None,
    our_path: str | None = None,
) -> None:
    out = _result_path(name, scale, limit)
    out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"scale_{name}_x{scale}_"))
    command = [python, __file__, "--child", name, "--scales", str(scale)]
    command += ["--workdir", str(workdir), "--out", str(out) + ".tmp"]
    if limit is not None:
        command += ["--limit", str(limit)]
    stage_file = Path(str(out) + ".stage")
    command += ["--query-step", str(query_step), "--stage-file", str(stage_file)]
    ours = our_path if our_path and name not in PYLATE_SYSTEMS else scale_data.ROOT
    env = dict(os.environ, PYTHONPATH=str(ours))
    load = os.getloadavg()
    print(f"running {name} x{scale} (code: {ours}) ...", flush=True)
    started = time.time()
    child = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        rc = child.wait(timeout=timeout_s)
        if rc != 0:
            raise subprocess.CalledProcessError(rc, command)
        os.replace(str(out) + ".tmp", out)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, 9)  # the child and any worker it started
        child.wait()
        stage = json.loads(stage_file.read_text()) if stage_file.exists() else {}
        stopped = {
            **{k: v for k, v in stage.items() if k not in ("stage", "t")},
            "system": name,
            "scale": scale,
            "limit": limit,
            "stopped_after_s": time.time() - started,
            "stage": stage.get("stage", "starting"),
            "stage_s": time.time() - stage.get("t", started),
            "load": load,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
        }
        out.write_text(json.dumps(stopped))
        print(f"stopped {name} x{scale} after {timeout_s} s at {stopped['stage']}")
    finally:
        stage_file.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)


def _recall(result: dict, ids: list[str], scale: int, limit: int | None) -> float:
    """Mean recall@10 against exact MaxSim, counting ties as hits.

    The 10x collection holds synthetic documents made of the same token spans
    as real ones, so several documents can share the exact 10th score; any of
    them is a correct answer. A returned document is a hit when its exact
    score reaches the exact 10th score (scored here, by the same kernel).
    """
    from pylate_clone.scores.kernels.maxsim import maxsim_flat

    tokens, lengths = scale_data.collection(scale, limit)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    queries = scale_data.queries()
    position = {doc_id: j for j, doc_id in enumerate(ids)}
    step = result.get("query_step", 1)
    exact = scale_data.exact_top10(scale, limit, step)
    recalls = []
    for q, returned, truth in zip(
        queries[::step], result["results"], exact, strict=False
    ):
        docs = [position[d] for d in returned[:K]] + [int(truth[-1])]
        flat = np.concatenate([tokens[offsets[j] : offsets[j + 1]] for j in docs])
        sub = np.concatenate([[0], np.cumsum([lengths[j] for j in docs])])
        scores = maxsim_flat([q], flat, sub.astype(np.int64))[0]
        threshold = scores[-1] - 1e-5 * abs(scores[-1])
        recalls.append(min(K, int(np.sum(scores[:-1] >= threshold))) / K)
    return float(np.mean(recalls))


def _fmt(value, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def load_rows(scale: int, limit: int | None) -> dict[str, dict]:
    """The cached result of every system at one scale, recall@10 added."""
    rows = {}
    for name in SYSTEMS:
        path = _result_path(name, scale, limit)
        if path.exists():
            rows[name] = json.loads(path.read_text())
    if rows:
        ids = scale_data.doc_ids(scale, limit)
        for r in rows.values():
            if "results" in r:
                r["recall"] = _recall(r, ids, scale, limit)
    return rows


def print_table(scales: list[int], limit: int | None) -> None:
    load = os.getloadavg()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"\n{now}, {platform.node()}, {os.cpu_count()} cores, "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    header = (
        "| scale | system | build s | +20 docs s | -10 docs s | peak RSS MB "
        "(data) | B/token | p50 ms | p95 ms | QPS single | QPS batch (all) "
        f"| QPS batch ({BATCH}) | recall@10 | p50 vs exact | load at run | run (UTC) |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for scale in scales:
        rows = load_rows(scale, limit)
        exact_p50 = rows.get("exact", {}).get("p50_ms")
        for name, r in rows.items():
            where = f"| {scale}x | {name} "
            if "stopped_after_s" in r:
                print(
                    f"{where}| {_fmt(r.get('build_s'), '.1f')} "
                    f"| stopped after {r['stopped_after_s']:.0f} s, at stage "
                    f"'{r['stage']}' ({r['stage_s']:.0f} s in it) "
                    f"| | | {_fmt(r.get('bytes_per_token'), '.1f')} "
                    f"| {_fmt(r.get('p50_ms'), '.1f')} | | | | | | "
                    f"| {r['load'][0]:.1f} | {r['date'][11:16]} |"
                )
                continue
            ratio_exact = r["p50_ms"] / exact_p50 if exact_p50 else None
            print(
                f"| {scale}x ({r['documents']:,} docs) | {name} | {r['build_s']:.1f} "
                f"| {_fmt(r['add20_s'], '.2f')} | {_fmt(r['remove10_s'], '.2f')} "
                f"| {r['peak_rss_mb']:,.0f} ({r['data_rss_mb']:,.0f}) "
                f"| {r['bytes_per_token']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} "
                f"| {_fmt(r.get('qps_single'), '.1f')} | {r['qps']:.1f} "
                f"| {_fmt(r.get('qps_batch32'), '.1f')} | {r['recall']:.3f} "
                f"| {_fmt(ratio_exact, '.2f')} | {r['load'][0]:.1f} "
                f"| {r['date'][11:16]} |"
            )


LABELS = {
    "pylate-plaid": "PyLate 1.6 PLAID",
    "pylate-warp": "PyLate 1.6 WARP",
    "plaid": "our PLAID",
    "plaid-2bit": "our PLAID (nbits=2)",
    "voyager": "our Voyager + rerank",
    "exact": "our Exact",
}


def export_results(scales: list[int], limit: int | None) -> None:
    """Write the finished rows as JSON and draw the charts (skipped without matplotlib)."""
    rows = []
    for scale in scales:
        for name, r in load_rows(scale, limit).items():
            if "stopped_after_s" in r or "recall" not in r:
                continue
            rows.append(
                {
                    "system": name,
                    "label": LABELS.get(name, name),
                    "scale": scale,
                    "documents": r["documents"],
                    "p50_ms": r["p50_ms"],
                    "recall_at_10": r["recall"],
                    "bytes_per_token": r["bytes_per_token"],
                    "load": r["load"][0],
                    "run_utc": r["date"],
                }
            )
    if not rows:
        return
    full = limit is None
    out = ROOT / "benchmarks" / "results" if full else RESULTS / "charts"
    # Rows of systems or scales this run did not measure (another scale, or
    # PyLate's PLAID of an earlier session) stay in the file and the charts.
    fresh = {(r["system"], r["scale"]) for r in rows}
    if (out / "index_scale.json").exists():
        kept = json.loads((out / "index_scale.json").read_text())["rows"]
        rows = [r for r in kept if (r["system"], r["scale"]) not in fresh] + rows
    loads = [r["load"] for r in rows]
    results = {
        "benchmark": "index_scale",
        "note": (
            f"SciFact {'/'.join(f'{s}x' for s in scales)}, {os.cpu_count()} cores, "
            f"load {min(loads):.0f}-{max(loads):.0f}"
        ),
        "source": "benchmarks/index_scale.py",
        "rows": rows,
    }
    print(f"wrote {charts.write_results(results, out / 'index_scale.json')}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("no charts: matplotlib is missing (pip install -e '.[bench]')")
        return
    for path in charts.write_charts(results, charts.IMAGES if full else out):
        print(f"wrote {path}")


def kernel_figures(scale: int, limit: int | None, repeats: int = 5) -> None:
    """GFLOP/s of ``maxsim_flat`` on the scale's float16 store vs dense matmul.

    Timed in turn on every repeat (same load), medians; 8 queries and 1
    query over the first 200,000 stored tokens.
    """
    import statistics

    import torch

    from pylate_clone.scores.kernels.maxsim import maxsim_flat

    tokens, lengths = scale_data.collection(scale, limit)
    lengths = lengths[: int(np.searchsorted(np.cumsum(lengths), 200_000)) + 1]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    store = np.asarray(tokens[: offsets[-1]], dtype=np.float16)
    qs = scale_data.queries()
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    jobs = {
        "dense matmul 2048^3": (lambda: torch.mm(a, b), 2.0 * 2048**3),
        "maxsim_flat, 8 queries": (
            lambda: maxsim_flat(qs[:8], store, offsets),
            2.0 * sum(len(q) for q in qs[:8]) * store.shape[1] * offsets[-1],
        ),
        "maxsim_flat, 1 query": (
            lambda: maxsim_flat(qs[:1], store, offsets),
            2.0 * len(qs[0]) * store.shape[1] * offsets[-1],
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats + 1):  # the first round warms up
        for name, (fn, _) in jobs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    rates = {n: jobs[n][1] / statistics.median(t[1:]) / 1e9 for n, t in times.items()}
    matmul = rates["dense matmul 2048^3"]
    print(f"kernel, {scale}x store, load {os.getloadavg()[0]:.1f}:")
    for name, rate in rates.items():
        print(f"  {name:<24} {rate:7.1f} GFLOP/s  {rate / matmul:5.0%} of matmul")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--scales", default="1,10")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--kernel", action="store_true", help="maxsim_flat GFLOP/s")
    parser.add_argument("--pylate-python", default=PYLATE_PYTHON)
    parser.add_argument(
        "--query-step",
        type=int,
        default=1,
        help="QPS and recall on every N-th query only (for slow systems)",
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=None,
        help="stop a system after this many seconds (recorded as stopped)",
    )
    parser.add_argument(
        "--our-path",
        default=None,
        help="PYTHONPATH of our systems (another pylate_clone checkout)",
    )
    parser.add_argument("--stage-file", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",")]

    if args.child:
        stage = Path(args.stage_file) if args.stage_file else None
        result = run_system(
            args.child,
            scales[0],
            args.limit,
            Path(args.workdir),
            args.query_step,
            stage,
        )
        Path(args.out).write_text(json.dumps(result))
        return

    if not args.table_only:
        for scale in scales:
            scale_data.collection(scale, args.limit)  # make the 10x file once
            scale_data.queries()
            for name in args.systems.split(","):
                if name not in SYSTEMS:
                    raise SystemExit(f"unknown system {name!r}; known: {SYSTEMS}")
                if scale in STREAMED_SCALES and name in PYLATE_SYSTEMS:
                    raise SystemExit(
                        f"{name} does not run at {scale}x (no streamed build)"
                    )
                if args.force or not _result_path(name, scale, args.limit).exists():
                    python = (
                        args.pylate_python if name in PYLATE_SYSTEMS else sys.executable
                    )
                    _run_child(
                        name, scale, args.limit, python, args.query_step,
                        args.timeout_s, args.our_path,
                    )  # fmt: skip
    print_table(scales, args.limit)
    export_results(scales, args.limit)
    if args.kernel:
        kernel_figures(scales[0], args.limit)


if __name__ == "__main__":
    main()
