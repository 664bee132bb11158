"""Write PyLate 1.6.0's public API surface as data: ``tests/fixtures/api/pylate_api.json``.

Run with the interpreter of a PyLate 1.6.0 install (never ours)::

    /work/pylate-ref/bin/python scripts/extract_pylate_api.py

The output lists, per PyLate module, the public classes and functions it defines
(plus everything its ``__all__`` re-exports) with their parameter lists: name,
kind and the ``repr`` of the default. Only names and parameter lists are stored,
no code. ``tests/test_api_surface.py`` checks ``pylate_clone`` against it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import sys
from pathlib import Path

import pylate

# The REST server is the serving issue's; Stanford's vendored ColBERT internals
# are not public API.
SKIPPED_PREFIXES = ("pylate.server", "pylate.indexes.stanford_nlp")
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
        return {"kind": "class", "methods": methods}
    if inspect.isfunction(obj):
        return {"kind": "function", "parameters": parameters(obj)}
    return {"kind": type(obj).__name__}


def main() -> None:
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
        surface[name] = {"all": sorted(exported), "names": names}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(surface, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({len(surface)} modules)")


if __name__ == "__main__":
    main()
