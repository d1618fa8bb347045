"""Static audit of the source: nothing that executes data (pickle, eval, yaml.load, torch.load without
``weights_only=True``) in dsc or the built-in plugins."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SOURCES = sorted(p for d in ("dsc", "plugins") for p in (ROOT / d).rglob("*.py"))

FORBIDDEN_CALLS = {
    ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("cPickle", "loads"), ("dill", "load"),
    ("dill", "loads"), ("marshal", "load"), ("marshal", "loads"), ("shelve", "open"), ("yaml", "load"),
    ("yaml", "unsafe_load"), ("yaml", "full_load"), ("joblib", "load"),
}
FORBIDDEN_NAMES = {"eval", "exec", "__import__"}


def _dotted(func: ast.expr) -> tuple[str, str] | None:
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.value.id, func.attr
    return None


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}:{node.lineno}"
        dotted = _dotted(node.func)
        if isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_NAMES:
            out.append(f"{where}: {node.func.id}()")
        if dotted in FORBIDDEN_CALLS:
            out.append(f"{where}: {'.'.join(dotted)}()")
        keywords = {k.arg: k.value for k in node.keywords}
        if dotted is not None and dotted[1] == "load" and dotted[0] == "torch":
            value = keywords.get("weights_only")
            if not (isinstance(value, ast.Constant) and value.value is True):
                out.append(f"{where}: torch.load without weights_only=True")
        if dotted is not None and dotted[1] == "load" and dotted[0] in ("np", "numpy"):
            value = keywords.get("allow_pickle")
            if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                out.append(f"{where}: np.load with allow_pickle")
    return out


def test_sources_were_found():
    assert len(SOURCES) > 40 and any(p.name == "registry.py" for p in SOURCES)


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_no_code_execution_from_data(path):
    assert _problems(path) == []


def test_the_audit_catches_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch, pickle, yaml\nx = torch.load('a')\ny = torch.load('a', weights_only=False)\n"
                   "pickle.loads(b'')\neval('1')\nyaml.load('a')\nm.eval()\n")
    found = _problems(bad)
    assert len(found) == 5 and not any("m.eval" in f for f in found), found
