"""Write PyLate 1.6.0's public API surface as data: ``tests/fixtures/api/pylate_api.json``.

Run with the interpreter of a PyLate 1.6.0 install (never ours)::

    /tmp/pylate-1.6/bin/python scripts/extract_pylate_api.py [OUT.json]

The output lists, per PyLate module, the public classes and functions it defines
(plus everything its ``__all__`` re-exports) with their parameter lists: name,
kind and the ``repr`` of the default; a dataclass also lists its fields. Public
module-level data is listed too: loggers by kind, plain values (bool, int, str,
list, ...) by kind and ``repr``. ``pylate.server.server`` runs a server when
imported, so its top-level names are read from its source (``ast``) instead.
Only names, parameter lists and short values are stored, no code.
``tests/test_api_surface.py`` checks ``pylate_clone`` against it.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import json
import logging
import pkgutil
import sys
from pathlib import Path

import pylate

# The REST server script is read from source (importing it serves); Stanford's
# vendored ColBERT internals are not public API.
SKIPPED_PREFIXES = ("pylate.server", "pylate.indexes.stanford_nlp")
SERVER_SCRIPT = "pylate.server.server"
PLAIN_DATA = (bool, int, float, str, list, tuple, dict)
# Typing helpers a module imports are not its API.
NOT_DATA = {"TYPE_CHECKING"}
LONGEST_VALUE = 200
OUT = Path(__file__).resolve().parent.parent / "tests/fixtures/api/pylate_api.json"


def parameters(obj) -> list[dict] | None:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    out = []
    for p in signature.parameters.values():
        entry = {"name": p.name, "kind": p.kind.name}
        if p.default is not inspect.Parameter.empty:
            entry["default"] = repr(p.default)
        out.append(entry)
    return out


def describe(obj, module_name: str) -> dict:
    if inspect.isclass(obj):
        methods = {}
        for name, member in vars(obj).items():
            if name.startswith("_") and name not in ("__init__", "__call__"):
                continue
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if inspect.isfunction(member):
                methods[name] = parameters(member)
        described = {"kind": "class", "methods": methods}
        if dataclasses.is_dataclass(obj):
            described["fields"] = sorted(f.name for f in dataclasses.fields(obj))
        return described
    if inspect.isfunction(obj):
        return {"kind": "function", "parameters": parameters(obj)}
    return {"kind": type(obj).__name__}


def describe_data(obj) -> dict | None:
    """Module-level data worth listing: a logger, or a plain value."""
    if isinstance(obj, logging.Logger):
        return {"kind": "Logger"}
    if type(obj) in PLAIN_DATA:
        described = {"kind": type(obj).__name__}
        if len(repr(obj)) <= LONGEST_VALUE:
            described["value"] = repr(obj)
        return described
    return None


def ast_parameters(args: ast.arguments) -> list[dict]:
    """A function's parameter list as :func:`parameters` writes it, from source."""
    out = []
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + args.defaults
    for arg, default in zip(positional, defaults):
        entry = {"name": arg.arg, "kind": "POSITIONAL_OR_KEYWORD"}
        if default is not None:
            entry["default"] = ast.unparse(default)
        out.append(entry)
    if args.vararg:
        out.append({"name": args.vararg.arg, "kind": "VAR_POSITIONAL"})
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        entry = {"name": arg.arg, "kind": "KEYWORD_ONLY"}
        if default is not None:
            entry["default"] = ast.unparse(default)
        out.append(entry)
    if args.kwarg:
        out.append({"name": args.kwarg.arg, "kind": "VAR_KEYWORD"})
    return out


def describe_script(path: Path) -> dict:
    """Top-level classes, functions and assigned names of a script, unexecuted."""
    names: dict[str, dict] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = {"kind": "class", "methods": {}}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = {
                "kind": "function",
                "parameters": ast_parameters(node.args),
            }
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and not target.id.startswith("_"):
                    names[target.id] = {"kind": "assigned at import"}
    return {"all": [], "names": names}


def main(out: Path = OUT) -> None:
    modules = {"pylate": pylate}
    for info in pkgutil.walk_packages(pylate.__path__, "pylate."):
        if info.name.startswith(SKIPPED_PREFIXES):
            continue
        try:
            modules[info.name] = importlib.import_module(info.name)
        except Exception as error:  # optional backends may not import
            print(f"skip {info.name}: {error}", file=sys.stderr)
    surface = {}
    for name, module in sorted(modules.items()):
        exported = set(getattr(module, "__all__", []))
        names = {}
        for attr, obj in vars(module).items():
            if attr.startswith("_") and attr not in exported:
                continue
            if inspect.ismodule(obj):
                continue
            defined_here = getattr(obj, "__module__", None) == name
            if attr in exported or (
                defined_here and (inspect.isclass(obj) or inspect.isfunction(obj))
            ):
                names[attr] = describe(obj, name)
            elif attr not in NOT_DATA and not attr.startswith("_"):
                data = describe_data(obj)
                if data is not None:
                    names[attr] = data
        surface[name] = {"all": sorted(exported), "names": names}
    script = Path(pylate.__file__).parent / "server" / "server.py"
    surface[SERVER_SCRIPT] = describe_script(script)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(surface, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out} ({len(surface)} modules)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
