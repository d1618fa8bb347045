"""The store owns its format: outside dsc/store/, no code opens HDF5, indexes store groups, defines the
splits or reads the OOD flag by hand (issue 13). Tests may craft damaged files with h5py; shipped code may not.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("dsc", "plugins", "benchmarks", "examples")
#: The one exception, with its reason: the subset benchmark times a plain PIL + h5py loop against dsc.
ALLOWED_H5PY = {"benchmarks/bench_subset.py"}


def _modules() -> list[Path]:
    files = [p for d in SCANNED for p in sorted((ROOT / d).rglob("*.py"))]
    return [p for p in files if (ROOT / "dsc" / "store") not in p.parents]


def _violations(path: Path, root: Path = ROOT) -> list[str]:
    rel = path.relative_to(root).as_posix()
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom) and rel not in ALLOWED_H5PY:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(n == "h5py" or n.startswith("h5py.") for n in names):
                out.append(f"{where} imports h5py (read stores with dsc.store.Store, write with StoreWriter)")
        elif isinstance(node, ast.Attribute) and node.attr == "h5":
            out.append(f"{where} touches a store's HDF5 handle (.h5); add a Store/StoreWriter method instead")
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and \
                isinstance(node.slice.value, str) and node.slice.value.startswith(("samples/", "classes/")):
            out.append(f"{where} indexes the store group {node.slice.value!r}")
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "SPLITS" for t in node.targets):
            out.append(f"{where} defines SPLITS (import it from dsc.store.schema)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("column", "has", "read") and node.args and \
                isinstance(node.args[0], ast.Constant) and node.args[0].value == "is_ood":
            out.append(f"{where} reads the is_ood column by hand (use Store.is_ood)")
    return out


def test_no_module_outside_the_store_opens_hdf5_or_reads_store_internals():
    modules = _modules()
    assert len(modules) > 50 and any(p.name == "probe.py" for p in modules)
    found = [v for p in modules for v in _violations(p)]
    assert not found, "\n".join(found)


def test_the_allow_list_is_still_needed():
    for rel in ALLOWED_H5PY:
        assert "import h5py" in (ROOT / rel).read_text(), f"{rel} no longer uses h5py: drop it from the list"


def test_the_scan_finds_each_kind_of_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('import h5py\nx = store.h5["samples"]\ny = f["samples/images"]\nSPLITS = ("train",)\n'
                   'z = store.column("is_ood")\nw = writer.h5.require_group("rejections")\n')
    found = _violations(bad, tmp_path)
    assert len(found) == 6 and "imports h5py" in found[0] and "SPLITS" in "".join(found), found

