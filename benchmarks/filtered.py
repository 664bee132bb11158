"""Filtered search: recall@10 and p50 latency per filter selectivity.

SciFact (1x, or 10x with ``--scales 10``) with synthetic metadata ``bucket =
document number mod 1000``; the filters ``{"bucket": {"$lt": b}}`` keep 0.1%,
1%, 10%, 50% and 100% of the documents (plus the unfiltered query). Systems,
each in its own child process:

* ``exact``: our Exact index with the filter: exact MaxSim over the matching
  documents (float16 vectors). Its top-10 is the ground truth of recall@10.
* ``plaid``: our PLAID with the filter (the engine picks an exact scan of the
  matching rows or IVF search with probing widened by the selectivity).
* ``pylate-plaid``: PyLate 1.6.0's PLAID (fast-plaid) with ``subset=`` the
  matching ids, run by ``--pylate-python`` (its own venv).

Queries: every ``--query-step``-th of the 300 SciFact test queries and 100
pseudo queries (``scale_data.queries``). Recall from one call with all of
them; p50 from one query per call over the first ``--latency-queries``. A
slow system can run on fewer queries (a ``--query-step`` that is a multiple of
exact's): its recall is then scored on exact's rows of those queries.
Results go to ``benchmarks/results/filtered_<system>_x<scale>.json``; the
table prints with the date and machine load of each run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale_data  # noqa: E402

RESULTS = scale_data.ROOT / "benchmarks" / "results"
PYLATE_PYTHON = os.environ.get("PYLATE_PYTHON", "/tmp/pylate-1.6/bin/python")
SYSTEMS = ("exact", "plaid", "pylate-plaid")
BUCKETS = 1000
#: Selectivity name -> buckets kept (None: no filter at all).
SELECTIVITIES = {
    "0.1%": 1,
    "1%": 10,
    "10%": 100,
    "50%": 500,
    "100%": 1000,
    "none": None,
}
K = 10


def _open(name: str, folder: Path):
    """``(add(ids, docs, buckets), search(queries, b) -> ids per query)``."""
    if name == "pylate-plaid":
        from pylate import indexes

        index = indexes.PLAID(
            index_folder=str(folder), index_name="bench", override=True,
            show_progress=False,
        )  # fmt: skip
        state = {}

        def add(ids, docs, buckets):
            index.add_documents(ids, docs)
            state["ids"], state["buckets"] = ids, np.asarray(buckets)

        def search(qs, b):
            # PyLate has no metadata: the application computes the id list.
            subset = None
            if b is not None:
                keep = np.flatnonzero(state["buckets"] < b)
                subset = [state["ids"][i] for i in keep]
            return [[h["id"] for h in hits] for hits in index(qs, k=K, subset=subset)]

        return add, search
    from pylate_clone import indexes

    if name == "plaid":
        index = indexes.PLAID(index_folder=folder, override=True, show_progress=False)
    elif name == "exact":
        index = indexes.Exact(index_folder=folder, override=True, show_progress=False)
    else:
        raise ValueError(f"unknown system {name!r}; known: {SYSTEMS}")

    def add(ids, docs, buckets):
        index.add_documents(ids, docs, metadata=[{"bucket": int(b)} for b in buckets])

    def search(qs, b):
        filter = None if b is None else {"bucket": {"$lt": b}}
        return [[h["id"] for h in hits] for hits in index(qs, k=K, filter=filter)]

    return add, search


def run_system(name: str, scale: int, step: int, n_latency: int, workdir: Path) -> dict:
    ids = scale_data.doc_ids(scale)
    docs = scale_data.documents(scale)
    buckets = np.arange(len(ids)) % BUCKETS
    queries = scale_data.queries()[::step]
    add, search = _open(name, workdir / name)
    start = time.perf_counter()
    add(ids, docs, buckets)
    build_s = time.perf_counter() - start
    search(queries[:2], None)  # warm up (lazy loads, JIT, thread pools)
    rows = {}
    for label, b in SELECTIVITIES.items():
        search(queries[:1], b)  # the filter's first use (its SQL, caches)
        results = search(queries, b)
        latencies = []
        for q in queries[:n_latency]:
            start = time.perf_counter()
            search([q], b)
            latencies.append(time.perf_counter() - start)
        rows[label] = {
            "p50_ms": 1000 * float(np.percentile(latencies, 50)),
            "results": results,
        }
        print(
            f"  {name} x{scale} {label}: p50 {rows[label]['p50_ms']:.1f} ms", flush=True
        )
    return {
        "system": name,
        "scale": scale,
        "queries": len(queries),
        "query_step": step,
        "latency_queries": n_latency,
        "build_s": build_s,
        "rows": rows,
        "load": os.getloadavg(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
    }


def _path(name: str, scale: int) -> Path:
    return RESULTS / f"filtered_{name}_x{scale}.json"


def _run_child(name: str, scale: int, args: argparse.Namespace) -> None:
    out = _path(name, scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"filtered_{name}_"))
    python = args.pylate_python if name.startswith("pylate") else sys.executable
    command = [
        python, __file__, "--child", name, "--scales", str(scale),
        "--query-step", str(args.query_step),
        "--latency-queries", str(args.latency_queries),
        "--workdir", str(workdir), "--out", str(out) + ".tmp",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(scale_data.ROOT))
    print(f"running {name} x{scale} (load {os.getloadavg()[0]:.1f}) ...", flush=True)
    try:
        subprocess.run(command, env=env, check=True)
        os.replace(str(out) + ".tmp", out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _recall(got: list[list], truth: list[list]) -> float:
    values = [len(set(g) & set(t)) / len(t) for g, t in zip(got, truth) if len(t) > 0]
    return float(np.mean(values)) if values else float("nan")


class _ExactScores:
    """Exact MaxSim of any document of a scale, to score ties and check filters.

    The synthetic documents of 10x repeat spans of real ones, so two
    documents can have exactly the same MaxSim: which of them is in exact's
    top 10 is then the tie order, not a ranking error.
    """

    def __init__(self, scale: int, step: int) -> None:
        self.flat, lengths = scale_data.collection(scale)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        self.row = {d: i for i, d in enumerate(scale_data.doc_ids(scale))}
        self.queries = scale_data.queries()[::step]

    def score(self, q: int, doc: str) -> float:
        i = self.row[doc]
        tokens = np.asarray(
            self.flat[self.offsets[i] : self.offsets[i + 1]], np.float32
        )
        return float((self.queries[q] @ tokens.T).max(axis=1).sum())

    def tie_aware_recall(
        self, got: list[list], truth: list[list], every: int, buckets: int | None
    ) -> float:
        """Share of returned documents scoring at least exact's k-th.

        ``got[j]`` answers exact's query ``j * every``. Raises if a returned
        document is outside the filter ``bucket < buckets``.
        """
        values = []
        for j, (g, t) in enumerate(zip(got, truth)):
            q = j * every
            outside = [
                d for d in g if buckets is not None and self.row[d] % BUCKETS >= buckets
            ]
            if outside:
                raise AssertionError(f"query {q}: {outside} are outside the filter")
            if not t:
                continue
            kth = min(self.score(q, d) for d in t)
            tolerance = 1e-5 * max(1.0, abs(kth))
            found = [d for d in g if d in t or self.score(q, d) >= kth - tolerance]
            values.append(min(len(found), len(t)) / len(t))
        return float(np.mean(values)) if values else float("nan")


def _every(step: int, truth_step: int) -> int:
    """Every how many of the ground truth's queries a run's queries fall."""
    if step % truth_step:
        raise ValueError(
            f"a run with --query-step {step} cannot be scored against an exact run "
            f"with --query-step {truth_step}: its step must be a multiple of it."
        )
    return step // truth_step


def print_table(scale: int) -> None:
    loaded = {
        n: json.loads(_path(n, scale).read_text())
        for n in SYSTEMS
        if _path(n, scale).exists()
    }
    if "exact" not in loaded:
        print(f"x{scale}: no exact run, no ground truth")
        return
    truth = loaded["exact"]["rows"]
    truth_step = loaded["exact"].get("query_step", 4)
    exact = _ExactScores(scale, truth_step)
    print(
        f"\nSciFact x{scale}: recall@10 vs exact MaxSim over the matching documents, p50 ms"
    )
    for name, run in loaded.items():
        print(f"  {name}: {run['date']}, load {', '.join(f'{x:.1f}' for x in run['load'])}, "
              f"{run['queries']} queries, p50 over {run['latency_queries']}, "
              f"build {run['build_s']:.0f} s")  # fmt: skip
    print(
        "(tie-aware: a returned document counts when its exact MaxSim is at "
        "least exact's 10th)"
    )
    header = "| selectivity | " + " | ".join(
        f"{n} recall | {n} tie-aware | {n} p50 ms" for n in loaded
    )
    print(header + " |")
    print("|" + "---|" * (1 + 3 * len(loaded)))
    for label in SELECTIVITIES:
        cells = []
        for name, run in loaded.items():
            row = run["rows"][label]
            # A system run on every N-th of exact's queries is scored on those.
            every = _every(run.get("query_step", 4), truth_step)
            reference = truth[label]["results"][::every]
            recall = _recall(row["results"], reference)
            ties = exact.tie_aware_recall(
                row["results"], reference, every, SELECTIVITIES[label]
            )
            cells += [f"{recall:.3f}", f"{ties:.3f}", f"{row['p50_ms']:.1f}"]
        print(f"| {label} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--scales", default="1")
    parser.add_argument("--query-step", type=int, default=4)
    parser.add_argument("--latency-queries", type=int, default=30)
    parser.add_argument("--pylate-python", default=PYLATE_PYTHON)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",")]
    if args.child:
        result = run_system(
            args.child, scales[0], args.query_step, args.latency_queries,
            Path(args.workdir),
        )  # fmt: skip
        Path(args.out).write_text(json.dumps(result))
        return
    for scale in scales:
        if not args.table_only:
            for name in args.systems.split(","):
                if args.force or not _path(name, scale).exists():
                    _run_child(name, scale, args)
        print_table(scale)


if __name__ == "__main__":
    main()
