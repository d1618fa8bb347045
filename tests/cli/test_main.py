from __future__ import annotations

import subprocess
import sys


def test_help_and_version_do_not_import_torch():
    code = ("import sys; from dsc.cli.main import main\n"
            "for args in (['--help'], ['--version'], ['plugins']):\n"
            "    try: main(args)\n"
            "    except SystemExit: pass\n"
            "bad = [m for m in ('torch', 'diffusers', 'h5py', 'transformers', 'timm') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_version(run_dsc):
    res = run_dsc("--version")
    assert res.code == 0 and res.out.startswith("dsc ")


def test_domain_error_is_one_line(run_dsc, tmp_path):
    res = run_dsc("info", tmp_path / "missing.h5")
    assert res.code == 1
    assert res.err.strip().startswith("Error:") and "Traceback" not in res.err
    assert "does not exist" in res.err


def test_config_show_sources(run_dsc, tmp_path, monkeypatch):
    (tmp_path / "dsc.toml").write_text("[subset]\nresolution = 96\n")
    monkeypatch.setenv("DSC_SUBSET__SEED", "7")
    res = run_dsc("config", "show", "subset", "--json")
    assert res.code == 0, res
    import json

    data = json.loads(res.out)["settings"]
    assert data["subset.resolution"] == {"value": 96, "source": "config file dsc.toml"}
    assert data["subset.seed"] == {"value": 7, "source": "environment"}
    assert data["subset.dataset"]["source"] == "default"


def test_invalid_setting_is_readable(run_dsc, monkeypatch):
    monkeypatch.setenv("DSC_SUBSET__RESOLUTION", "big")
    res = run_dsc("config", "show")
    assert res.code == 1 and "subset.resolution" in res.err and "environment" in res.err
