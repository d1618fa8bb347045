"""The backbone resolver: specs, unknown names, checkpoint loading (dsc/backbones.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dsc.backbones import create_backbone, list_backbones, load_weights, parse_spec
from dsc.errors import ModelError, PluginError


@pytest.mark.parametrize(("spec", "expected"), [
    ("resnet50", ("timm", "resnet50")),
    ("timm:convnext_tiny.fb_in1k", ("timm", "convnext_tiny.fb_in1k")),
    ("torchvision:resnet18", ("torchvision", "resnet18")),
    ("hf-hub:timm/resnet18.a1_in1k", ("timm", "hf-hub:timm/resnet18.a1_in1k")),
    (" test_resnet ", ("timm", "test_resnet")),
])
def test_parse_spec(spec: str, expected: tuple[str, str]) -> None:
    assert parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", "timm:"])
def test_parse_spec_rejects_empty(spec: str) -> None:
    with pytest.raises(PluginError):
        parse_spec(spec)


def test_default_plugin_is_timm() -> None:
    backbone = create_backbone("test_resnet")
    assert backbone.model_id == "timm:test_resnet"
    assert backbone.feature_dim == 96


def test_unknown_plugin_lists_installed() -> None:
    with pytest.raises(PluginError, match="unknown backbone plugin 'timmm'.*did you mean 'timm'"):
        create_backbone("timmm:resnet18")


@pytest.mark.parametrize(("spec", "close"), [
    ("resnt18", "resnet18"),
    ("timm:test_resnett", "test_resnet"),
    ("torchvision:resnet19", "resnet18"),
])
def test_unknown_model_names_closest(spec: str, close: str) -> None:
    with pytest.raises(PluginError, match="unknown .* model") as info:
        create_backbone(spec)
    assert close in (info.value.hint or "")


def test_unknown_pretrained_tag() -> None:
    with pytest.raises(PluginError, match=r"'test_resnet\.nope'") as info:
        create_backbone("test_resnet.nope")
    assert "test_resnet.r160_in1k" in (info.value.hint or "")


def test_list_backbones_across_plugins() -> None:
    names = list_backbones("resnet18")
    assert names == ["timm:resnet18", "torchvision:resnet18"]
    assert "timm:test_vit" in list_backbones("test_*", plugin="timm")
    assert "timm:test_resnet.r160_in1k" in list_backbones("test_resnet.*")


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("name", ["w.safetensors", "w.pth"])
def test_checkpoint_roundtrip(tmp_path: Path, name: str) -> None:
    source = create_backbone("test_resnet")
    path = _save(source.module.state_dict(), tmp_path / name)
    loaded = create_backbone("test_resnet", checkpoint=path)
    fresh = create_backbone("test_resnet")
    x = torch.randn(2, 3, 32, 32)
    for m in (source.module, loaded.module, fresh.module):
        m.eval()
    torch.testing.assert_close(loaded.module(x), source.module(x))
    assert not torch.allclose(fresh.module(x), source.module(x))


def test_checkpoint_with_wrapper_prefix_and_head(tmp_path: Path) -> None:
    """A training checkpoint (``encoder.``-prefixed keys plus a projection head) loads the encoder."""
    source = create_backbone("test_resnet")
    state = {f"encoder.{k}": v for k, v in source.module.state_dict().items()}
    state["head.0.weight"] = torch.zeros(4, 4)
    path = _save(state, tmp_path / "run.safetensors")
    target = create_backbone("test_resnet").module
    report = load_weights(target, path)
    assert report.prefix == "encoder."
    assert report.matched == len(source.module.state_dict())
    assert report.missing == [] and report.unexpected == ["head.0.weight"]


def test_checkpoint_nested_state_dict(tmp_path: Path) -> None:
    source = create_backbone("test_resnet").module
    path = tmp_path / "nested.pth"
    torch.save({"state_dict": source.state_dict(), "epoch": 3}, path)
    assert load_weights(create_backbone("test_resnet").module, path).matched == len(source.state_dict())


def test_checkpoint_of_other_architecture_is_refused(tmp_path: Path) -> None:
    path = _save(create_backbone("test_vit").module.state_dict(), tmp_path / "vit.safetensors")
    with pytest.raises(ModelError, match="matches none"):
        create_backbone("test_resnet", checkpoint=path)


def test_checkpoint_missing_or_pickled(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        create_backbone("test_resnet", checkpoint=tmp_path / "absent.pth")
    import argparse

    bad = tmp_path / "namespace.pth"
    torch.save({"opt": argparse.Namespace(lr=0.1)}, bad)  # SupContrast-style pickle: refused safely
    with pytest.raises(ModelError, match="cannot read checkpoint"):
        create_backbone("test_resnet", checkpoint=bad)
