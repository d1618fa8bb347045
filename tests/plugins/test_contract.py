"""Every installed plugin (built-in or third-party, as ``list_plugins`` finds it) honours its contract."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dsc import registry
from dsc.backbones import check_feature_dim, create_backbone
from dsc.contracts import SUMMARY_MAX, Plugin

PLUGINS = [pytest.param(p.kind, p.name, id=f"{p.kind}:{p.name}") for p in registry.list_plugins()]
BACKBONES = [p.name for p in registry.list_plugins("backbone")]


@pytest.mark.parametrize(("kind", "name"), PLUGINS)
def test_plugin_passes_the_registry_checks_and_builds_from_its_options(kind: str, name: str) -> None:
    cls = registry.get_plugin(kind, name)  # the registry's own contract checks ran here
    assert issubclass(cls, Plugin) and cls.name == name
    assert cls.summary and "\n" not in cls.summary and len(cls.summary) <= SUMMARY_MAX
    plugin = registry.create(kind, name)  # Plugin(Options()): the same for every kind
    assert type(plugin) is cls and type(plugin.options) is cls.Options
    if cls.Options.model_config.get("extra") != "allow":  # backbones may pass free keywords to their library
        with pytest.raises(ValidationError):
            cls.Options(no_such_option=1)


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_declares_the_width_it_outputs(name: str) -> None:
    """dsc trusts a backbone's feature_dim at run time; this is where it is measured."""
    cls = registry.get_plugin("backbone", name)
    assert cls.example_model, f"{name} names no example_model to test"
    backbone = create_backbone(f"{name}:{cls.example_model}")
    assert check_feature_dim(backbone) == backbone.feature_dim
