"""`dsc subset` end to end through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dsc.store import Store
from tests.subset.conftest import make_tree


@pytest.fixture
def tree(tmp_path, testtree):
    make_tree(tmp_path / "d", {"gear": 14, "bolt": 12, "nut": 10, "spring": 2}, masks=tmp_path / "m",
              group_size=2, meta={"gear": {"super": ["Part"]}, "bolt": {"super": ["Part"]}})
    (tmp_path / "d" / "gear" / "gear99-99.png").write_bytes(b"")  # a zero-byte image with a good mask
    (tmp_path / "m" / "gear" / "gear99-99.png").write_bytes((tmp_path / "m" / "gear" / "gear0-0.png").read_bytes())
    return tmp_path


def test_subset_then_info(run_dsc, tree):
    res = run_dsc("subset", "--dataset", "testtree", "--root", tree / "d", "--masks", tree / "m",
                  "--crop-to-object", "--mask-dilation", "4", "--resolution", "32", "--classes", "2",
                  "--holdout-classes", "1", "--min-per-class", "3", "--seed", "1", "--workers", "1",
                  "--split", "0.6,0.2,0.2", "--output", tree / "data.h5")
    assert res.code == 0, res
    assert "subset: images per class and split" in res.out and "held out" in res.out
    assert "skipped 1 image (1 empty file)" in res.out and "gear99-99.png" in res.out
    assert "skipped class spring: 2 images" in res.out and "wrote" in res.out
    st = Store(tree / "data.h5")
    assert st.attrs["settings"]["split"] == [0.6, 0.2, 0.2] and st.attrs["sources"]["subset.seed"] == "command line"
    assert "--holdout-classes 1" in st.attrs["command"]
    info = run_dsc("info", tree / "data.h5")
    assert info.code == 0 and "masks yes" in info.out and "32x32x3" in info.out and "held out" in info.out
    assert "testtree" in info.out and "1 (1 empty file)" in info.out
    data = json.loads(run_dsc("info", tree / "data.h5", "--json").out)
    assert data["n"] == len(st) and data["masks"] and data["holdout"] == st.holdout.sum()
    assert sum(data["counts"]["test"].values()) == (st.split == "test").sum()


def test_settings_layers_and_json(run_dsc, tree, monkeypatch):
    (tree / "dsc.toml").write_text(f'[subset]\ndataset = "testtree"\nroot = "{tree / "d"}"\nresolution = 16\n')
    monkeypatch.chdir(tree)
    monkeypatch.setenv("DSC_SUBSET__WORKERS", "1")
    res = run_dsc("subset", "--class-names", "bolt,nut", "--option", "own_splits=false", "-o", "x.h5", "--json")
    assert res.code == 0, res
    out = json.loads(res.out)
    assert out["n"] == 22 and out["summary"]["resolution"] == 16
    st = Store(tree / "x.h5")
    assert st.classes == ["bolt", "nut"] and st.attrs["sources"]["subset.workers"] == "environment"
    assert st.attrs["sources"]["subset.resolution"].startswith("config file")


@pytest.mark.parametrize("args, message", [
    (["--root", "NOPE"], "dataset root NOPE does not exist"),
    (["--super-class", "Boat"], "unknown super-class 'Boat'"),
    (["--classes", "9"], "asked for 9 classes"),
    (["--split", "0.5,0.5"], "expected train,val,test"),
    (["--split", "0.5,0.1,0.1"], "split must be three"),
    (["--option", "nonsense"], "is not key=value"),
    (["--crop-to-object"], "needs masks"),
    (["--dataset", "testtre"], "did you mean 'testtree'"),
])
def test_bad_input_is_one_line(run_dsc, tree, args, message):
    base = {"--dataset": "testtree", "--root": str(tree / "d")}
    for flag, value in zip(args[::2], args[1::2], strict=False):
        base[flag] = value
    flat = [x for kv in base.items() for x in kv] + [a for a in args if a.startswith("--crop")]
    res = run_dsc("subset", *flat, "-o", tree / "o.h5")
    assert res.code == 1, res
    lines = [ln for ln in res.err.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in res.err
    assert not list(tree.glob("o.h5*"))


def test_output_directory_must_exist_and_force(run_dsc, tree):
    args = ["subset", "--dataset", "testtree", "--root", tree / "d", "--workers", "1", "--resolution", "16"]
    res = run_dsc(*args, "-o", tree / "missing" / "o.h5")
    assert res.code == 1 and "output directory" in res.err
    assert run_dsc(*args, "-o", tree / "o.h5").code == 0
    res = run_dsc(*args, "-o", tree / "o.h5")
    assert res.code == 1 and "--force" in res.err
    assert run_dsc(*args, "-o", tree / "o.h5", "--force").code == 0


def test_subset_help_is_torch_free():
    code = ("import sys\nfrom dsc.cli.main import main\n"
            "try: main(['subset', '--help'])\nexcept SystemExit: pass\n"
            "bad = [m for m in ('torch', 'diffusers', 'h5py', 'transformers', 'timm', 'PIL', 'numpy')"
            " if m in sys.modules]\nassert not bad, bad\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--holdout-classes" in proc.stdout and "--crop-to-object" in proc.stdout
    assert "[default: 224]" in proc.stdout and "[default: error]" in proc.stdout
