"""A real, licence-free corpus present on every machine: the standard library's docstrings.

Docstrings are read with ``ast`` from the ``.py`` sources, so no module is
imported (some have side effects, e.g. ``antigravity`` opens a browser).
"""

from __future__ import annotations

import ast
import sysconfig
from pathlib import Path

DEFAULT_MODULES = (
    "argparse",
    "ast",
    "asyncio",
    "base64",
    "bisect",
    "calendar",
    "collections",
    "concurrent",
    "configparser",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "email",
    "enum",
    "fileinput",
    "fnmatch",
    "fractions",
    "ftplib",
    "functools",
    "getpass",
    "gettext",
    "glob",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "http",
    "imaplib",
    "importlib",
    "inspect",
    "ipaddress",
    "json",
    "logging",
    "lzma",
    "mailbox",
    "mimetypes",
    "multiprocessing",
    "netrc",
    "operator",
    "optparse",
    "os",
    "pathlib",
    "pickle",
    "platform",
    "plistlib",
    "pprint",
    "queue",
    "quopri",
    "random",
    "re",
    "secrets",
    "selectors",
    "shlex",
    "shutil",
    "smtplib",
    "socket",
    "socketserver",
    "sqlite3",
    "ssl",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "timeit",
    "tokenize",
    "trace",
    "traceback",
    "typing",
    "unittest",
    "urllib",
    "uuid",
    "warnings",
    "wave",
    "weakref",
    "xml",
    "zipfile",
    "zoneinfo",
)


def _module_files(stdlib: Path, name: str) -> list[tuple[str, Path]]:
    single = stdlib / f"{name}.py"
    if single.is_file():
        return [(name, single)]
    package = stdlib / name
    files = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(stdlib).with_suffix("").parts
        if any(part.startswith(("test", "_")) and part != "__init__" for part in parts):
            continue
        module = ".".join(p for p in parts if p != "__init__")
        files.append((module, path))
    return files


def _docstrings(module: str, tree: ast.Module) -> list[tuple[str, str]]:
    found = []
    doc = ast.get_docstring(tree)
    if doc:
        found.append((module, doc))

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if child.name.startswith("_"):
                    continue
                name = f"{prefix}.{child.name}"
                doc = ast.get_docstring(child)
                if doc and len(doc) >= 40:
                    found.append((name, doc))
                if isinstance(child, ast.ClassDef):
                    visit(child, name)

    visit(tree, module)
    return found


def stdlib_docstrings(
    modules: tuple[str, ...] = DEFAULT_MODULES, max_documents: int | None = None
) -> tuple[list[str], list[str]]:
    """Collect ``(ids, texts)``: one document per public docstring, id = dotted name.

    Parameters
    ----------
    modules
        Top-level standard-library modules or packages to read.
    max_documents
        Keep at most this many (in a stable order), or all with ``None``.
    """
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    ids: list[str] = []
    texts: list[str] = []
    seen: set[str] = set()
    for name in modules:
        for module, path in _module_files(stdlib, name):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, OSError):
                continue
            for doc_id, text in _docstrings(module, tree):
                if doc_id in seen:
                    continue
                seen.add(doc_id)
                ids.append(doc_id)
                texts.append(f"{doc_id}: {text}")
    if max_documents is not None:
        ids, texts = ids[:max_documents], texts[:max_documents]
    if not ids:
        raise RuntimeError(f"No docstrings found under {stdlib}.")
    return ids, texts
