"""The backbone resolver: specs, unknown names, checkpoint loading (dsc/backbones.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dsc import registry
from dsc.backbones import check_feature_dim, create_backbone, list_backbones, load_weights, parse_spec
from dsc.contracts import Backbone, BackbonePlugin
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


# ------------------------------------------------------------------------------ declared feature_dim
class _Liar(BackbonePlugin):
    """Declares 7 features but outputs 5 (a broken plugin)."""

    name = "liar"
    summary = "Declares 7 features but outputs 5"

    def list_models(self, pattern: str = "*") -> list[str]:
        return ["m"]

    def create(self, model: str, *, pretrained: bool = False, checkpoint: Path | None = None) -> Backbone:
        module = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 5))
        return Backbone(module, feature_dim=7, model_id="liar:m",
                        data_config={"input_size": (3, 8, 8), "mean": (0.5,) * 3, "std": (0.5,) * 3})


@pytest.fixture
def liar():
    registry.register("backbone", "liar", _Liar)
    yield "liar:m"
    registry.unregister("backbone", "liar")


def test_declared_feature_dim_is_trusted_at_run_time(liar: str) -> None:
    """Training builds the backbone without a dry forward: the declared width stands (it was re-measured)."""
    from dsc.settings import PretrainSettings
    from dsc.train.common import build_backbone

    backbone = build_backbone(PretrainSettings(backbone=liar, image_size=8, stem="imagenet"), seed=0)
    assert backbone.feature_dim == 7


def test_check_feature_dim_names_a_wrong_declaration(liar: str) -> None:
    with pytest.raises(PluginError, match=r"liar:m declares feature_dim 7 but outputs \(1, 5\) features"):
        check_feature_dim(create_backbone(liar))
    assert check_feature_dim(create_backbone("test_resnet"), image_size=32) == 96


def test_a_run_recording_another_feature_dim_is_refused(tmp_path: Path) -> None:
    """run.json's feature_dim no longer overwrites the built backbone's: a disagreement is an error."""
    from dsc.errors import MismatchError
    from dsc.train.checkpoint import load_encoder

    (tmp_path / "run.json").write_text(json.dumps({"backbone": {"name": "timm:test_resnet", "feature_dim": 95}}))
    with pytest.raises(MismatchError, match="records 95 features for timm:test_resnet, but that backbone now "
                                            "builds 96"):
        load_encoder(tmp_path)
