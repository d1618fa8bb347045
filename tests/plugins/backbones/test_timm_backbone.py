"""The timm backbone plugin on timm's tiny test architectures, offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dsc.backbones import create_backbone
from dsc.errors import ModelError

TINY = ["test_resnet", "test_vit", "test_efficientnet", "test_convnext", "test_byobnet"]


@pytest.mark.parametrize("name", TINY)
def test_tiny_models_give_pooled_features(name: str) -> None:
    backbone = create_backbone(f"timm:{name}")
    cfg = backbone.data_config
    assert set(cfg) >= {"input_size", "mean", "std", "interpolation"}
    assert len(cfg["input_size"]) == 3 and len(cfg["mean"]) == 3 and len(cfg["std"]) == 3
    backbone.module.eval()
    with torch.no_grad():
        out = backbone.module(torch.randn(2, *cfg["input_size"]))
    assert out.shape == (2, backbone.feature_dim)


def test_kwargs_reach_timm_and_none_is_dropped() -> None:
    backbone = create_backbone("test_vit", drop_path_rate=0.1, global_pool=None)
    assert any("DropPath" in type(m).__name__ for m in backbone.module.modules())


def test_bad_option_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="cannot build"):
        create_backbone("test_resnet", no_such_option=3)


def test_pretrained_not_cached_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ModelError, match="not in the local cache") as info:
        create_backbone("test_resnet", pretrained=True)
    assert "--checkpoint" in (info.value.hint or "")


def test_pretrained_from_a_local_hf_cache_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A hub cache laid out as huggingface_hub writes it: refs/main -> snapshots/<sha>/model.safetensors."""
    import huggingface_hub.constants
    import timm
    from safetensors.torch import save_file

    reference = timm.create_model("test_resnet")  # with its 1000-class head, as published
    repo = tmp_path / "hub" / "models--timm--test_resnet.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    snap = repo / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    save_file(reference.state_dict(), str(snap / "model.safetensors"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    backbone = create_backbone("test_resnet", pretrained=True)
    assert backbone.weights_file == snap / "model.safetensors"   # training records its hash
    loaded = backbone.module.state_dict()
    assert "fc.weight" not in loaded  # pooled features only
    for key, value in loaded.items():
        if key in reference.state_dict():
            torch.testing.assert_close(value, reference.state_dict()[key])


def test_damaged_cached_weights_are_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub.constants

    snap = tmp_path / "hub" / "models--timm--test_resnet.r160_in1k" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("abc")
    (snap / "model.safetensors").write_bytes(b"not a safetensors file")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelError, match="cannot load the cached weights"):
        create_backbone("test_resnet", pretrained=True)


def test_checkpoint_wins_over_pretrained(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = create_backbone("test_resnet").module
    path = tmp_path / "w.safetensors"
    save_file(source.state_dict(), str(path))
    # no cache exists, yet this works: the checkpoint replaces the pretrained weights
    backbone = create_backbone("test_resnet", pretrained=True, checkpoint=path)
    torch.testing.assert_close(backbone.module.state_dict()["conv1.0.weight"], source.state_dict()["conv1.0.weight"])


def test_feature_dim_is_the_pooled_width_when_a_head_widens_it() -> None:
    """mobilenetv3 pools 288 channels into a 1024-wide pre-logits layer: feature_dim must say 1024."""
    backbone = create_backbone("timm:mobilenetv3_small_050")
    backbone.module.eval()
    with torch.no_grad():
        out = backbone.module(torch.randn(1, 3, 32, 32))
    assert backbone.feature_dim == out.shape[1] == 1024
