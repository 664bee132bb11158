"""The ``pylate-clone`` command line, run as a real subprocess.

The installed console script is used when it sits next to this interpreter
(``pip install -e .`` creates it; CI installs the package that way), or the
one ``PYLATE_CLONE_SCRIPT`` names, else ``python -m pylate_clone.cli`` (same entry function; the test below checks
that ``[project.scripts]`` points at it). The data is a slice of Cranfield
from ``../shared/data`` and the model the tiny fixture ColBERT.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from pylate_clone import indexes
from pylate_clone.cli import main
from pylate_clone.cli.commands import evaluate_run
from pylate_clone.cli.formats import read_queries, read_run, write_run

ROOT = Path(__file__).resolve().parents[1]
N_DOCUMENTS = 150


def _command() -> list[str]:
    if os.environ.get("PYLATE_CLONE_SCRIPT"):  # a script installed elsewhere
        return [os.environ["PYLATE_CLONE_SCRIPT"]]
    script = Path(sys.executable).with_name("pylate-clone")
    if script.is_file():
        return [str(script)]
    found = shutil.which("pylate-clone")
    if found and Path(found).resolve().parent == Path(sys.executable).resolve().parent:
        return [found]
    return [sys.executable, "-m", "pylate_clone.cli"]


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ}
    if not os.environ.get("PYLATE_CLONE_SCRIPT"):
        env["PYTHONPATH"] = str(ROOT)
    env.pop("PYLATE_CLONE_DEBUG", None)
    return subprocess.run(
        [*_command(), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("pylate-clone"), lines[0]
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def model_dir(fixtures_dir: Path) -> str:
    return str(fixtures_dir / "models" / "tiny-colbert")


@pytest.fixture(scope="module")
def cranfield(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BEIR folder: the first documents of Cranfield, their judged queries."""
    source = data_dir / "cranfield"
    folder = tmp_path_factory.mktemp("cranfield")
    lines = (source / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    kept = lines[:N_DOCUMENTS]
    ids = {json.loads(line)["_id"] for line in kept}
    (folder / "corpus.jsonl").write_text("\n".join(kept) + "\n", encoding="utf-8")
    shutil.copy(source / "queries.jsonl", folder / "queries.jsonl")
    rows = (source / "qrels.tsv").read_text(encoding="utf-8").splitlines()
    judged = [row for row in rows[1:] if row.split("\t")[1] in ids]
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text(
        "\n".join([rows[0], *judged]) + "\n", encoding="utf-8"
    )
    return folder


# -- independent metrics (trec_eval's definitions, written out) --------------------


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for row in path.read_text().splitlines()[1:]:
        query, doc, grade = row.split("\t")
        qrels.setdefault(query, {})[doc] = int(grade)
    return qrels


def _ranking(run: Path) -> dict[str, list[str]]:
    rows: dict[str, list[tuple[int, str]]] = {}
    for line in run.read_text().splitlines():
        query, _, doc, rank, _, _ = line.split()
        rows.setdefault(query, []).append((int(rank), doc))
    return {q: [doc for _, doc in sorted(r)] for q, r in rows.items()}


def reference_metrics(ranking, qrels) -> dict[str, float]:
    totals = {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}
    for query, judged in qrels.items():
        relevant = {doc for doc, grade in judged.items() if grade > 0}
        if not relevant:
            continue
        docs = ranking.get(query, [])
        gains = [max(judged.get(doc, 0), 0) for doc in docs[:10]]
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
        ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:10]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        totals["ndcg@10"] += dcg / idcg
        totals["recall@100"] += len(relevant & set(docs[:100])) / len(relevant)
        first = next((i for i, doc in enumerate(docs[:10]) if doc in relevant), None)
        totals["mrr@10"] += 0.0 if first is None else 1.0 / (first + 1)
    judged_queries = sum(1 for j in qrels.values() if any(g > 0 for g in j.values()))
    return {name: value / judged_queries for name, value in totals.items()}


# -- the console script ------------------------------------------------------------


def test_console_script_entry_resolves():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    target = pyproject["project"]["scripts"]["pylate-clone"]
    module, _, function = target.partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    result = run_cli("--help", timeout=300)
    assert result.returncode == 0
    for command in ("index", "search", "evaluate", "serve", "migrate"):
        assert command in result.stdout


@pytest.mark.slow
def test_index_search_evaluate_on_cranfield(cranfield, model_dir, tmp_path):
    index = run_cli(
        "index",
        "--model",
        model_dir,
        "--corpus",
        cranfield,
        "--index",
        tmp_path / "indexes",
        "--index-name",
        "cran",
    )
    assert index.returncode == 0, index.stderr
    assert f"indexed {N_DOCUMENTS} documents" in index.stdout
    assert "plaid" in index.stdout  # the default kind of a new index
    assert "Encoding documents" in index.stderr and "%|" in index.stderr

    run = tmp_path / "run.trec"
    search = run_cli(
        "search",
        "--model",
        model_dir,
        "--index",
        tmp_path / "indexes",
        "--index-name",
        "cran",
        "--queries",
        cranfield,
        "-k",
        "10",
        "--output",
        run,
        "--quiet",
    )
    assert search.returncode == 0, search.stderr
    assert "%|" not in search.stderr  # --quiet hides the progress bars
    qrels = _qrels(cranfield / "qrels" / "test.tsv")
    lines = run.read_text().splitlines()
    assert len(lines) == 10 * len(qrels)  # only the judged (test) queries
    query, q0, doc, rank, score, tag = lines[0].split()
    assert (q0, rank, tag) == ("Q0", "1", "pylate_clone") and float(score) > 0

    evaluate = run_cli("evaluate", "--run", run, "--qrels", cranfield)
    assert evaluate.returncode == 0, evaluate.stderr
    printed = dict(line.split() for line in evaluate.stdout.splitlines())
    assert list(printed) == ["ndcg@10", "recall@100", "mrr@10"]
    assert all(len(value.split(".")[1]) == 4 for value in printed.values())
    expected = reference_metrics(_ranking(run), qrels)
    for metric, value in expected.items():
        assert float(printed[metric]) == pytest.approx(value, abs=5e-5), metric
    assert expected["ndcg@10"] > 0.05  # the tiny model still finds something

    # An existing index keeps its kind.
    wrong = run_cli(
        "index",
        "--model",
        model_dir,
        "--corpus",
        cranfield,
        "--index",
        tmp_path / "indexes",
        "--index-name",
        "cran",
        "--kind",
        "voyager",
    )
    assert_one_line_error(wrong, "plaid", "--kind")


def _in_process(argv: list, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Exit status and stderr of ``pylate-clone ARGV`` run in this process."""
    try:
        status = main([str(arg) for arg in argv])
    except SystemExit as stop:  # argparse errors
        status = stop.code
    return status, capsys.readouterr().err


def test_errors_are_one_line_with_status_2(cranfield, model_dir, tmp_path, capsys):
    bad_run = tmp_path / "bad.trec"
    bad_run.write_text("1 Q0 d1 1\n")
    good_run = tmp_path / "good.trec"
    good_run.write_text("1 Q0 d1 1 2.5 x\n")
    empty = tmp_path / "empty-index"
    (empty / "colbert").mkdir(parents=True)
    (empty / "colbert" / "stray.pkl").write_bytes(b"not ours")
    search = ["search", "--model", model_dir, "--queries", cranfield]
    cases = [
        (
            [
                "index",
                "--model",
                model_dir,
                "--corpus",
                tmp_path / "missing",
                "--index",
                tmp_path / "i",
            ],
            ["corpus", "does not exist"],
        ),
        (
            [*search, "--index", tmp_path / "none", "--output", tmp_path / "r"],
            ["no index"],
        ),
        (
            [*search, "--index", empty, "--output", tmp_path / "r"],
            ["not a pylate_clone index", "migrate"],
        ),
        ([*search, "--index", tmp_path, "--output", tmp_path / "r", "-k", "0"], ["-k"]),
        (
            [*search, "--index", tmp_path, "--output", tmp_path / "no" / "r"],
            ["output folder"],
        ),
        (["evaluate", "--run", bad_run, "--qrels", cranfield], ["bad.trec:1"]),
        (
            ["evaluate", "--run", good_run, "--qrels", tmp_path / "nope.tsv"],
            ["qrels", "does not exist"],
        ),
        (
            ["evaluate", "--run", good_run, "--qrels", cranfield, "--metrics", "bogus"],
            ["bogus"],
        ),
        (
            [
                "index",
                "--model",
                model_dir,
                "--corpus",
                cranfield,
                "--index",
                tmp_path / "k",
                "--kind",
                "bogus",
            ],
            ["--kind 'bogus'", "plaid"],
        ),
        (["index", "--model", model_dir], ["required"]),
        (["search", "--model", model_dir, "-k", "ten"], ["-k"]),
        (["frobnicate"], ["invalid choice"]),
        (["migrate", tmp_path / "not-there", "--trust-pickle"], []),
    ]
    for argv, words in cases:
        status, err = _in_process(argv, capsys)
        lines = [line for line in err.splitlines() if line.strip()]
        assert status == 2, (argv, err)
        assert len(lines) == 1 and lines[0].startswith("pylate-clone"), (argv, err)
        for word in words:
            assert word in lines[0], (argv, lines[0])


@pytest.mark.slow
def test_errors_of_the_real_process_are_one_line(tmp_path):
    missing = run_cli("evaluate", "--run", tmp_path / "x.trec", "--qrels", tmp_path)
    assert_one_line_error(missing, "does not exist")
    assert_one_line_error(run_cli("index", "--corpus", tmp_path), "required")


@pytest.mark.slow
def test_migrate_command(fixtures_dir, tmp_path):
    folder = tmp_path / "voyager-index"
    shutil.copytree(fixtures_dir / "pylate-indexes" / "voyager-index", folder)
    refused = run_cli("migrate", folder)
    if not hasattr(indexes, "migrate_pylate_index"):
        assert_one_line_error(refused, "not available in this build yet")
        return
    assert_one_line_error(refused, "--trust-pickle")
    done = run_cli("migrate", folder, "--trust-pickle", "--quiet")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "voyager-index.pylate-backup").is_dir()
    assert (folder / "manifest.json").is_file()
    assert "migrated" in done.stdout


# -- in-process pieces -------------------------------------------------------------


def test_bad_arguments_exit_2_in_process(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["search", "--model", "m"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pylate-clone search: error:")


def test_evaluate_counts_graded_gains_and_self_ids(tmp_path):
    # Query "1" judges document "1" (same id as the query): it must count.
    qrels = {"1": {"1": 2, "a": 1, "b": -1}, "2": {"c": 1}, "3": {"z": 0}}
    rankings = {"1": ["b", "1", "x", "a"], "2": ["x", "y"]}
    values = evaluate_run(rankings, qrels, ["ndcg@10", "mrr@10", "recall@100"])
    ndcg_1 = (2 / math.log2(3) + 1 / math.log2(5)) / (2 + 1 / math.log2(3))
    # Query "3" has no relevant document; query "2" finds nothing: both count 0
    # in the mean over the two judged queries with a relevant document.
    assert values["ndcg@10"] == pytest.approx(ndcg_1 / 2)
    assert values["mrr@10"] == pytest.approx(0.5 / 2)
    assert values["recall@100"] == pytest.approx(1.0 / 2)


def test_run_round_trip_keeps_order_of_ties(tmp_path):
    path = tmp_path / "run.trec"
    results = [
        [
            {"id": "d2", "score": 1.5},
            {"id": "d1", "score": 1.5},
            {"id": 3, "score": 0.25},
        ]
    ]
    assert write_run(path, ["q"], results) == 3
    assert path.read_text().splitlines()[2] == "q Q0 3 3 0.250000 pylate_clone"
    assert read_run(path) == {"q": ["d2", "d1", "3"]}
    with pytest.raises(ValueError, match="whitespace"):
        write_run(path, ["q"], [[{"id": "a b", "score": 1.0}]])


def test_read_queries_keeps_test_queries_only(cranfield):
    ids, texts = read_queries(cranfield)
    assert set(ids) == set(_qrels(cranfield / "qrels" / "test.tsv"))
    assert len(ids) < 225 and all(texts)
    all_ids, _ = read_queries(cranfield / "queries.jsonl")
    assert len(all_ids) == 225
