"""benchmarks/charts.py draws the docs' charts from a benchmark's results JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import charts  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _row(system: str, documents: int, p50: float, recall: float) -> dict:
    return {
        "system": system,
        "documents": documents,
        "scale": documents // 1000,
        "p50_ms": p50,
        "recall_at_10": recall,
        "bytes_per_token": 256.0,
    }


def test_results_missing_a_field_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    row = _row("plaid", 1000, 10.0, 0.9)
    del row["p50_ms"]
    path.write_text(json.dumps({"rows": [_row("exact", 1000, 50.0, 1.0), row]}))
    with pytest.raises(ValueError, match=r"rows\[1\] lacks \['p50_ms'\]"):
        charts.load_results(path)
    path.write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="non-empty 'rows'"):
        charts.load_results(path)


def test_charts_are_written_per_available_axis(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    one_size = {
        "benchmark": "demo",
        "rows": [_row("plaid", 1000, 10.0, 0.95), _row("exact", 1000, 50.0, 1.0)],
    }
    written = charts.write_charts(one_size, tmp_path)
    # One collection size: no size axis to draw, only recall against latency.
    assert [p.name for p in written] == ["demo_recall_vs_p50.png"]
    two_sizes = {
        "benchmark": "demo",
        "rows": [*one_size["rows"], _row("plaid", 10000, 40.0, 0.97)],
    }
    path = tmp_path / "results.json"
    charts.write_results(two_sizes, path)
    written = charts.write_charts(charts.load_results(path), tmp_path, "scale")
    assert [p.name for p in written] == [
        "scale_recall_vs_p50.png",
        "scale_scale.png",
    ]
    for png in written:
        data = png.read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave nothing behind
