"""Run the ``>>>`` examples of PyLate's docstrings against pylate_clone.

Usage: ``python _upstream_doctests.py SOURCE_ROOT REPORT.json [LEFT_OUT_NAME ...]``.

``SOURCE_ROOT`` holds PyLate's extracted ``pylate/`` package. Its modules are
never imported: ``ast`` reads their docstrings (module, classes, functions,
methods, nested ones too) and ``doctest.DocTestParser`` turns each docstring
with examples into one ``DocTest`` named ``pylate.<module>.<qualname>``. Each
runs in its own working folder (holding links to the entries of
``$PYLATE_DOCTEST_SEED``: stand-in datasets at the relative paths the examples
load) with the namespace of its PyLate module served by pylate_clone (see
:func:`module_globals`), since some examples use names their module imports
(``torch``, ``np``, the documented class itself); ``import pylate``
is served by the shim (``pylate_upstream_shim`` must be on ``sys.path``).
The flags are PyLate's own (``doctest_optionflags`` in its pyproject):
NORMALIZE_WHITESPACE and NUMBER.

The report maps each name to ``{"examples", "failures", "output"}``, or to
``{"left_out": true}`` for the names given on the command line.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pylate_upstream_shim  # noqa: F401  (installs the pylate -> pylate_clone alias)

# NUMBER is pytest's doctest extension (floats match to the precision written),
# so the checker is pytest's, as when PyLate runs ``pytest --doctest-modules``.
from _pytest.doctest import _get_checker, _get_number_flag

FLAGS = doctest.NORMALIZE_WHITESPACE | _get_number_flag()
DEFINITIONS = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def docstrings(path: Path, module: str):
    """Yield ``(qualified name, docstring, line)`` for every docstring in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    pending = [(tree, module)]
    while pending:
        node, name = pending.pop(0)
        doc = ast.get_docstring(node, clean=False)
        if doc:
            yield name, doc, getattr(node, "lineno", 0)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, DEFINITIONS):
                pending.append((child, f"{name}.{child.name}"))


def module_globals(path: Path, module: str) -> dict:
    """The namespace an example of PyLate's ``module`` sees, served by pylate_clone.

    PyLate's module-level imports (``numpy as np``, ``torch``...) are run first,
    each on its own, with ``pylate`` resolving to pylate_clone; an import that
    fails is skipped. The globals of ``pylate_clone``'s module of the same path
    then take precedence, so the documented objects are pylate_clone's.
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    namespace = {"__name__": module, "__package__": package}
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for statement in tree.body:
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            code = compile(ast.Module([statement], []), str(path), "exec")
            try:
                exec(code, namespace)  # noqa: S102  (an import line of PyLate's)
            except Exception:  # noqa: BLE001, S112  (a name pylate_clone lacks)
                continue
    ours = "pylate_clone" + module[len("pylate") :]
    try:
        target = importlib.import_module(ours)
    except ModuleNotFoundError as error:
        if not ours.startswith(error.name or "?"):  # ours fails to import: a bug
            raise
        return namespace
    namespace.update(vars(target))
    return namespace


def collect(root: Path) -> list[tuple[Path, str, doctest.DocTest]]:
    """``(file, module, DocTest)`` per docstring with examples under ``root/pylate``."""
    parser = doctest.DocTestParser()
    tests = []
    for path in sorted((root / "pylate").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        module = ".".join(parts)
        for name, doc, line in docstrings(path, module):
            if not parser.get_examples(doc):
                continue
            tests.append(
                (path, module, parser.get_doctest(doc, {}, name, str(path), line))
            )
    return tests


def seed_folder(folder: Path) -> None:
    """Link each entry of ``$PYLATE_DOCTEST_SEED`` (stand-ins) into ``folder``."""
    seed = os.environ.get("PYLATE_DOCTEST_SEED")
    if seed:
        for entry in Path(seed).iterdir():
            (folder / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())


def main() -> None:
    root, report_path, left_out = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    start = os.getcwd()
    report = {}
    for path, module, test in collect(root):
        if test.name in left_out:
            report[test.name] = {"left_out": True}
            continue
        test.globs = module_globals(path, module)
        started = time.perf_counter()
        output = io.StringIO()
        runner = doctest.DocTestRunner(checker=_get_checker(), optionflags=FLAGS)
        with tempfile.TemporaryDirectory() as folder:
            seed_folder(Path(folder))
            os.chdir(folder)
            try:
                result = runner.run(test, out=output.write, clear_globs=True)
            finally:
                os.chdir(start)
        seconds = round(time.perf_counter() - started, 2)
        report[test.name] = {
            "seconds": seconds,
            "examples": result.attempted,
            "failures": result.failed,
            "output": output.getvalue()[-4000:],
        }
        passed = result.attempted - result.failed
        print(f"{test.name}: {passed}/{result.attempted} examples, {seconds} s")
    report_path.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
