"""PNG charts of the index benchmarks' results, for the docs.

The benchmarks (``index.py``, ``index_scale.py``) write their figures as JSON
(``{"benchmark": ..., "note": ..., "rows": [...]}``, one row per system and
scale: ``system``, ``scale``, ``documents``, ``p50_ms``, ``recall_at_10``,
``bytes_per_token``, optional ``label``) and call :func:`write_charts`; this
script redraws the charts from such a file::

    python benchmarks/charts.py benchmarks/results/index_scale.json
    python benchmarks/charts.py RESULTS.json --out docs/images --prefix scale

Charts written into ``--out`` (``docs/images`` by default):

- ``<prefix>_recall_vs_p50.png``: recall@10 against p50 latency (one query per
  call, log scale), one marker style per index kind; a kind measured at
  several scales is joined by a line, small to large.
- ``<prefix>_scale.png`` (only when the rows cover more than one collection
  size): p50 and bytes per token on disk against the number of documents.

matplotlib is the ``bench`` extra (``pip install -e '.[bench]'``), never a
dependency of the package; it is imported only here, when a chart is drawn.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
MARKERS = "osD^vP*Xh"
NEEDED = ("system", "documents", "p50_ms", "recall_at_10", "bytes_per_token")


def load_results(path: Path) -> dict:
    """Read a results file and check that every row has the fields the charts need."""
    results = json.loads(Path(path).read_text())
    rows = results.get("rows")
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{path}: expected a non-empty 'rows' list.")
    for i, row in enumerate(rows):
        missing = [key for key in NEEDED if key not in row]
        if missing:
            raise ValueError(f"{path}: rows[{i}] lacks {missing}.")
    return results


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("charts need matplotlib: pip install -e '.[bench]'") from None
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _by_system(rows: Sequence[dict]) -> dict[str, list[dict]]:
    systems: dict[str, list[dict]] = {}
    for row in rows:
        systems.setdefault(row.get("label") or row["system"], []).append(row)
    for series in systems.values():
        series.sort(key=lambda r: r["documents"])
    return systems


def _size_label(row: dict) -> str:
    scale = row.get("scale")
    return f"{scale}x" if scale else f"{row['documents']:,} docs"


def _document_axis(axes, sizes: Sequence[int]) -> None:
    """Log x axis ticked at the measured collection sizes only."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axes.set_xscale("log")
    axes.set_xticks(sorted(set(sizes)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("documents (log scale)")


def _save(figure, path: Path) -> Path:
    # Written beside the target and renamed: a reader never sees half a PNG.
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png.tmp")
    os.close(handle)
    try:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def recall_vs_p50(rows: Sequence[dict], path: Path, title: str) -> Path:
    """Recall@10 (y) against p50 latency in ms (x, log), one series per system."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for marker, (name, series) in zip(MARKERS * 4, _by_system(rows).items()):
        x = [r["p50_ms"] for r in series]
        y = [r["recall_at_10"] for r in series]
        axes.plot(x, y, marker=marker, linestyle="-" if len(series) > 1 else "")
        axes.lines[-1].set_label(name)
        for r in series:
            axes.annotate(
                _size_label(r),
                (r["p50_ms"], r["recall_at_10"]),
                textcoords="offset points",
                xytext=(6, 4),
                fontsize=7,
            )
    axes.set_xscale("log")
    axes.set_xlabel("p50 latency, one query per call (ms, log scale)")
    axes.set_ylabel("recall@10 against exact MaxSim")
    axes.set_title(title, fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="lower center")
    path = _save(figure, path)
    plt.close(figure)
    return path


def scale_chart(rows: Sequence[dict], path: Path, title: str) -> Path:
    """p50 (left) and bytes per token (right) against the number of documents."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for marker, (name, series) in zip(MARKERS * 4, _by_system(rows).items()):
        sizes = [r["documents"] for r in series]
        left.plot(sizes, [r["p50_ms"] for r in series], marker=marker, label=name)
        right.plot(
            sizes, [r["bytes_per_token"] for r in series], marker=marker, label=name
        )
    for axes in (left, right):
        _document_axis(axes, [r["documents"] for r in rows])
        axes.grid(True, which="both", alpha=0.3)
    left.set_yscale("log")
    left.set_ylabel("p50 latency, one query per call (ms, log scale)")
    right.set_ylabel("bytes per token on disk")
    right.set_ylim(bottom=0)
    left.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    path = _save(figure, path)
    plt.close(figure)
    return path


def write_charts(
    results: dict, out_dir: Path = IMAGES, prefix: str | None = None
) -> list[Path]:
    """Draw every chart the rows support; returns the PNG paths written.

    Parameters
    ----------
    results
        ``{"benchmark": name, "note": text, "rows": [...]}`` as the benchmarks
        write it (see the module docstring for the row fields).
    out_dir
        Folder of the PNGs.
    prefix
        File name prefix; the benchmark's name by default.
    """
    rows = [r for r in results["rows"] if r.get("p50_ms") and r.get("recall_at_10")]
    prefix = prefix or results.get("benchmark", "index")
    note = results.get("note", "")
    out_dir = Path(out_dir)
    written = [recall_vs_p50(rows, out_dir / f"{prefix}_recall_vs_p50.png", note)]
    if len({r["documents"] for r in rows}) > 1:
        written.append(scale_chart(rows, out_dir / f"{prefix}_scale.png", note))
    return written


def write_results(results: dict, path: Path) -> Path:
    """Write a results file atomically (JSON, sorted keys)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a benchmark's results JSON")
    parser.add_argument("--out", type=Path, default=IMAGES, help="PNG folder")
    parser.add_argument("--prefix", default=None, help="file name prefix")
    args = parser.parse_args()
    for path in write_charts(load_results(args.results), args.out, args.prefix):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
