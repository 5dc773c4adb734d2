"""The package import graph (docs/contracts.md) has no back edge, not even inside a function.

    shards  <-  ingest, pipeline, models  <-  train  <-  eval  <-  melstream (the CLI: everything)

Every ``import`` / ``from ... import`` statement of every module is read with ``ast`` (module level,
function bodies, ``TYPE_CHECKING`` blocks alike; relative imports resolved), plus literal
``importlib.import_module("...")`` calls.
"""
from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALLOWED = {
    "shards": set(),
    "ingest": {"shards"},
    "pipeline": {"shards"},
    "models": {"shards"},
    "train": {"shards", "ingest", "pipeline", "models"},
    "eval": {"shards", "ingest", "pipeline", "models", "train"},
    "melstream": {"shards", "ingest", "pipeline", "models", "train", "eval"},
}


def imports_of(path: str, package: str) -> list[tuple[int, str]]:
    """``(line, top-level package)`` of every import in ``path`` (a module of ``package``)."""
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] == "__init__":
        rel = rel[:-1]
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = rel[:len(rel) - node.level + (1 if path.endswith("__init__.py") else 0)]
                out.append((node.lineno, (base or [package])[0]))
            elif node.module:
                out.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                out.append((node.lineno, node.args[0].value.split(".")[0]))
    return out


def back_edges(package: str) -> list[str]:
    bad = []
    for d, _, files in os.walk(os.path.join(ROOT, package)):
        for f in sorted(files):
            if f.endswith(".py"):
                p = os.path.join(d, f)
                for line, top in imports_of(p, package):
                    if top in ALLOWED and top != package and top not in ALLOWED[package]:
                        bad.append(f"{os.path.relpath(p, ROOT)}:{line} imports {top}")
    return bad


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_back_edge(package):
    assert back_edges(package) == []


def test_the_parser_sees_nested_and_relative_imports(tmp_path, monkeypatch):
    """The checker itself: a function-local import and a relative one are found."""
    pkg = tmp_path / "models" / "sub"
    pkg.mkdir(parents=True)
    (tmp_path / "models" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "m.py").write_text("from .. import base\n\ndef f():\n    from eval.x import y\n    import train\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", str(tmp_path))
    assert sorted(t for _, t in imports_of(str(pkg / "m.py"), "models")) == ["eval", "models", "train"]
    assert back_edges("models") == ["models/sub/m.py:4 imports eval", "models/sub/m.py:5 imports train"]
