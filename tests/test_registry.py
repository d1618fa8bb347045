"""Plugin discovery: entry points only, the DSC_LOAD_PLUGINS allow-list, DSC_NO_THIRD_PARTY_PLUGINS, broken
and foreign plugins reported as PluginError, nothing imported until a plugin is used."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from types import SimpleNamespace

import pytest
from pydantic import BaseModel

from dsc import registry
from dsc.contracts import DatasetPlugin
from dsc.errors import ConfigError, PluginError


class FakeDataset(DatasetPlugin):
    """A fake dataset."""

    name = "fake"

    def classes(self):
        return []

    def records(self, classes):
        return iter(())


_FAKES: dict[str, type] = {}


def _fake(name: str) -> type:
    """One FakeDataset class per name: the registry checks that a plugin's name is its entry point's."""
    if name not in _FAKES:
        _FAKES[name] = type(f"Fake_{name}", (FakeDataset,), {"name": name, "__doc__": FakeDataset.__doc__})
    return _FAKES[name]


def _ep(name: str, dist: str, target=None, *, fails: bool = False):
    def load():
        if fails:
            raise ImportError("No module named 'missing_dependency'")
        return _fake(name) if target is None else target

    meta = SimpleNamespace(metadata={"Name": dist}, version="9.9")
    return SimpleNamespace(name=name, value=f"{dist}.mod:Cls", group="dsc.datasets", dist=meta, load=load)


@pytest.fixture
def fake_eps(monkeypatch):
    """Installed dataset entry points: two built-in, one third-party, one broken, one not a plugin class."""
    eps = [_ep("folder", "dsc"), _ep("toyparts", "dsc"), _ep("thirdparty", "acme-dsc-plugin"),
           _ep("broken", "broken-dist", fails=True), _ep("notaplugin", "odd-dist", target=dict)]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps if group == "dsc.datasets" else [])
    registry.refresh()
    yield eps
    registry.refresh()


def _names(kind: str = "dataset") -> list[str]:
    return [p.name for p in registry.list_plugins(kind)]


def test_discovery_lists_every_entry_point_without_loading(fake_eps):
    assert _names() == ["broken", "folder", "notaplugin", "thirdparty", "toyparts"]
    info = {p.name: p for p in registry.list_plugins("dataset")}
    assert info["folder"].builtin and not info["thirdparty"].builtin
    assert info["thirdparty"].distribution == "acme-dsc-plugin" and info["thirdparty"].version == "9.9"
    assert all(p._obj is None for p in info.values())  # nothing imported yet


def test_allow_list_loads_only_named_plugins(fake_eps, monkeypatch):
    monkeypatch.setenv("DSC_LOAD_PLUGINS", " folder , thirdparty,,")
    registry.refresh()
    assert _names() == ["folder", "thirdparty"]
    with pytest.raises(PluginError, match="unknown dataset plugin 'toyparts'") as exc:
        registry.get_plugin("dataset", "toyparts")
    assert "installed: folder, thirdparty" in exc.value.hint


def test_empty_allow_list_loads_nothing(fake_eps, monkeypatch):
    monkeypatch.setenv("DSC_LOAD_PLUGINS", "")
    registry.refresh()
    assert _names() == []


@pytest.mark.parametrize("value, third_party", [("1", False), ("true", False), ("YES", False), ("0", True),
                                                 ("", True)])
def test_no_third_party_switch(fake_eps, monkeypatch, value, third_party):
    monkeypatch.setenv("DSC_NO_THIRD_PARTY_PLUGINS", value)
    registry.refresh()
    assert ("thirdparty" in _names()) is third_party
    assert {"folder", "toyparts"} <= set(_names())


def test_both_switches_combine(fake_eps, monkeypatch):
    monkeypatch.setenv("DSC_NO_THIRD_PARTY_PLUGINS", "1")
    monkeypatch.setenv("DSC_LOAD_PLUGINS", "thirdparty,folder")
    registry.refresh()
    assert _names() == ["folder"]


def test_broken_and_foreign_plugins_are_plugin_errors_and_skipped(fake_eps, caplog):
    with pytest.raises(PluginError, match="failed to import: ImportError: No module named 'missing_dependency'"):
        registry.get_plugin("dataset", "broken")
    with pytest.raises(PluginError, match="is not a DatasetPlugin subclass"):
        registry.get_plugin("dataset", "notaplugin")
    with caplog.at_level(logging.WARNING, logger="dsc.registry"):
        loaded = registry.load_all("dataset")
    assert sorted(loaded) == ["folder", "thirdparty", "toyparts"]
    assert "broken" in caplog.text and "notaplugin" in caplog.text
    info = {p.name: p for p in registry.list_plugins("dataset")}
    assert info["broken"].summary.startswith("[broken]") and info["folder"].summary == "A fake dataset."


def test_duplicate_name_keeps_the_first(monkeypatch, caplog):
    eps = [_ep("folder", "dsc"), _ep("folder", "evil-dist", target=dict)]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps if group == "dsc.datasets" else [])
    registry.refresh()
    try:
        with caplog.at_level(logging.WARNING, logger="dsc.registry"):
            assert registry.get_plugin("dataset", "folder") is _fake("folder")
        assert "registered twice" in caplog.text and "evil-dist" in caplog.text
    finally:
        registry.refresh()


def test_unknown_kind_and_did_you_mean(fake_eps):
    with pytest.raises(PluginError, match="unknown plugin kind 'scheduler'"):
        registry.list_plugins("scheduler")
    with pytest.raises(PluginError, match="did you mean 'folder'"):
        registry.get_plugin("dataset", "foldr")


def test_real_discovery_imports_no_plugin_module(tmp_path):
    """Listing the real installed plugins reads metadata only (a fresh interpreter: no module imported)."""
    code = ("import sys, json; from dsc import registry; "
            "names = [p.name for p in registry.list_plugins()]; "
            "print(json.dumps([names, sorted(m for m in sys.modules if m.startswith(('dsc_datasets.', "
            "'dsc_backbones.', 'dsc_augmenters.', 'torch')))]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PATH": "", "DSC_NO_THIRD_PARTY_PLUGINS": "1"})
    assert proc.returncode == 0, proc.stderr
    names, imported = json.loads(proc.stdout)
    assert {"folder", "mvip", "toyparts", "timm", "torchvision", "dafusion"} <= set(names)
    assert imported == []


# ------------------------------------------------------------------------ the contract, checked by the registry
def _variant(plugin_name: str, **attrs) -> type:
    return type(f"Bad_{plugin_name}", (FakeDataset,), {"name": plugin_name, "__doc__": "A fake dataset.", **attrs})


class _NotOptions(BaseModel):
    x: int = 0


@pytest.mark.parametrize("name, target, problem", [
    ("noname", _variant("noname", name=""), "sets no name"),
    ("renamed", _variant("other"), "name is 'other', but its entry point is 'renamed'"),
    ("badopts", _variant("badopts", Options=_NotOptions), "Options is not a DatasetOptions subclass"),
    ("nosummary", _variant("nosummary", __doc__=None), "has no summary"),
    ("longsummary", _variant("longsummary", summary="x" * 91), "one line of at most 90 characters"),
    ("twolines", _variant("twolines", summary="one\ntwo"), "one line of at most 90 characters"),
])
def test_every_plugin_is_checked_against_its_contract(monkeypatch, name, target, problem):
    """Third-party plugins get the checks the built-ins' tests make: one line naming the package and the fault."""
    eps = [_ep("folder", "dsc"), _ep(name, "acme-dsc-plugin", target=target)]
    monkeypatch.setattr(registry, "entry_points", lambda group: eps if group == "dsc.datasets" else [])
    registry.refresh()
    try:
        with pytest.raises(PluginError) as exc:
            registry.get_plugin("dataset", name)
        assert problem in exc.value.message and "from acme-dsc-plugin is broken" in exc.value.message
        assert "\n" not in exc.value.message and "acme-dsc-plugin" in exc.value.hint
        assert registry.info("dataset", name).summary.startswith("[broken]")
        assert sorted(registry.load_all("dataset")) == ["folder"]  # the others keep working
    finally:
        registry.refresh()


def test_register_checks_the_contract_too():
    with pytest.raises(PluginError, match="has no summary"):
        registry.register("dataset", "nosummary", _variant("nosummary", __doc__=None))
    assert "nosummary" not in _names()


def test_create_builds_every_plugin_from_validated_options(fake_eps):
    plugin = registry.create("dataset", "folder", {"root": "/data"})
    assert isinstance(plugin, _fake("folder")) and str(plugin.options.root) == "/data"
    assert registry.create("dataset", "folder").options.root is None  # defaults
    opts = _fake("folder").Options(masks="/m")
    assert registry.create("dataset", "folder", opts).options is opts
    with pytest.raises(ConfigError) as exc:
        registry.create("dataset", "folder", {"rooot": "/data", "masks": 3})
    assert exc.value.message.startswith("invalid options for dataset 'folder': ")
    assert "rooot" in exc.value.message and "masks" in exc.value.message and "\n" not in exc.value.message
    assert exc.value.hint == "its options are: root, masks"


def test_info_says_where_a_plugin_comes_from(fake_eps):
    info = registry.info("dataset", "thirdparty")
    assert (info.distribution, info.version, info.builtin) == ("acme-dsc-plugin", "9.9", False)
    with pytest.raises(PluginError, match="did you mean 'thirdparty'"):
        registry.info("dataset", "thirdpary")
    with pytest.raises(PluginError, match="unknown plugin kind 'scheduler'"):
        registry.info("scheduler", "x")
