"""Third-party plugins: the example package installed with pip and used through `dsc`; broken plugins.

The example is installed with pip into a temporary ``--target`` directory that is put on ``sys.path``
(and ``PYTHONPATH`` for a fresh process). That is the same build and the same entry-point metadata as
``pip install examples/dsc-example-plugin`` into the venv, without changing the shared environment, so
concurrent test runs cannot see each other's half-installed package.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from dsc import registry
from dsc.errors import PluginError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dsc-example-plugin"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-install the example plugin (offline, no build isolation) into a private directory."""
    tmp = tmp_path_factory.mktemp("example-plugin")
    src = tmp / "src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--target", str(site), str(src)],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(site.glob("dsc_example_plugin-*.dist-info"))
    return site


@pytest.fixture
def on_path(example_site: Path):
    sys.path.insert(0, str(example_site))
    importlib.invalidate_caches()
    registry.refresh()
    try:
        yield example_site
    finally:
        sys.path.remove(str(example_site))
        sys.modules.pop("dsc_example_plugin", None)
        registry.refresh()


def _plugins_json(run_dsc) -> dict[str, dict]:
    res = run_dsc("plugins", "--kind", "dataset", "--json")
    assert res.code == 0, res
    return {row["name"]: row for row in json.loads(res.out)}


def test_installed_example_is_listed_and_usable(on_path, run_dsc):
    rows = _plugins_json(run_dsc)
    assert rows["stripes"]["distribution"] == "dsc-example-plugin"
    assert rows["stripes"]["version"] == "0.1.0"
    assert rows["stripes"]["summary"].startswith("Example third-party plugin")
    assert rows["toyparts"]["distribution"] == "dsc"  # built-ins are still there
    cls = registry.get_plugin("dataset", "stripes")
    ds = cls(cls.Options(per_class=3, image_size=16))
    names = [c.name for c in ds.classes()]
    recs = list(ds.records(names))
    assert len(recs) == 9 and recs[0].image.shape == (16, 16, 3)
    res = run_dsc("subset", "--dataset", "stripes", "--option", "per_class=4", "--option", "image_size=24",
                  "--resolution", "16", "--output", "stripes.h5", "--json")
    assert res.code == 0, res
    assert json.loads(res.out)["n"] == 12


def test_environment_switches(on_path, run_dsc, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DSC_NO_THIRD_PARTY_PLUGINS", "1")
    registry.refresh()
    assert "stripes" not in _plugins_json(run_dsc)
    monkeypatch.delenv("DSC_NO_THIRD_PARTY_PLUGINS")
    monkeypatch.setenv("DSC_LOAD_PLUGINS", "stripes,folder")
    registry.refresh()
    assert sorted(_plugins_json(run_dsc)) == ["folder", "stripes"]


def test_fresh_process_finds_the_installed_plugin(example_site: Path):
    env = {**os.environ, "PYTHONPATH": str(example_site)}
    proc = subprocess.run([sys.executable, "-m", "dsc.cli.main", "plugins", "--kind", "dataset", "--json"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["stripes"]["distribution"] == "dsc-example-plugin"


# ---------------------------------------------------------------------------------------- broken plugins
@pytest.fixture
def broken_entry_points(tmp_path: Path):
    """Add three bad dataset entry points next to the real ones (nothing is installed)."""
    (tmp_path / "dsc_boom_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    extra = [
        EntryPoint("missing", "dsc_no_such_module_xyz:Dataset", "dsc.datasets"),
        EntryPoint("boom", "dsc_boom_plugin:Dataset", "dsc.datasets"),
        EntryPoint("notaplugin", "collections:OrderedDict", "dsc.datasets"),
    ]
    real = registry.entry_points

    def fake(group: str):
        eps = list(real(group=group))
        return eps + extra if group == "dsc.datasets" else eps

    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(tmp_path))
        mp.setattr(registry, "entry_points", fake)
        registry.refresh()
        yield
    sys.modules.pop("dsc_boom_plugin", None)
    registry.refresh()


def test_broken_plugins_warn_and_others_keep_working(broken_entry_points, run_dsc,
                                                     caplog: pytest.LogCaptureFixture):
    rows = _plugins_json(run_dsc)
    assert rows["missing"]["summary"].startswith("[broken]") and "ModuleNotFoundError" in rows["missing"]["summary"]
    assert "RuntimeError: boom at import" in rows["boom"]["summary"]
    assert "not a DatasetPlugin subclass" in rows["notaplugin"]["summary"]
    assert not rows["folder"]["summary"].startswith("[broken]")
    with caplog.at_level(logging.WARNING):
        loaded = registry.load_all("dataset")
    assert {"folder", "mvip", "toyparts"} <= set(loaded) and "boom" not in loaded
    assert "'boom'" in caplog.text and "boom at import" in caplog.text
    with pytest.raises(PluginError, match="failed to import"):
        registry.get_plugin("dataset", "missing")
    ds = registry.get_plugin("dataset", "toyparts")
    assert len(ds(ds.Options()).classes()) >= 12


def test_unknown_plugin_name_suggests_the_closest(run_dsc):
    with pytest.raises(PluginError, match="did you mean 'toyparts'") as exc:
        registry.get_plugin("dataset", "toypart")
    assert "folder" in (exc.value.hint or "")
