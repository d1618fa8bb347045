"""dsc.testing is the one home of the tiny model and store factories: light to import, and no test reaches
into another package's conftest for them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def test_importing_dsc_testing_loads_no_heavy_library():
    code = ("import sys, json, dsc.testing; "
            "print(json.dumps([m for m in ('torch', 'h5py', 'diffusers') if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_no_test_imports_another_packages_conftest():
    pattern = re.compile(r"^\s*from tests\.(\w+)\.conftest import", re.M)
    offenders = [f"{path.relative_to(TESTS)} -> tests/{pkg}/conftest.py"
                 for path in TESTS.rglob("*.py") for pkg in pattern.findall(path.read_text())
                 if path.parent != TESTS / pkg]
    assert offenders == []


def test_the_factories_write_the_stores_they_describe(tmp_path):
    from dsc.store import open_store
    from dsc.testing import MASKED_CLASSES, PATTERN_CLASSES, masked_store, pattern_store, synthetic_store

    masked = open_store(masked_store(tmp_path / "m.h5"), kind="data")
    assert masked.classes == MASKED_CLASSES and masked.has_masks and len(masked) == 9
    data = pattern_store(tmp_path / "p.h5", per_class=(2, 1, 1))
    assert open_store(data, kind="data").classes == PATTERN_CLASSES
    ood = open_store(synthetic_store(tmp_path / "o.h5", data, ood=True, per_image=1))
    assert len(ood) == 6 and bool(ood.column("is_ood")[:].all())
