"""The torchvision backbone plugin: head replaced by Identity, data config, offline pretrained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dsc.backbones import create_backbone
from dsc.errors import ModelError


@pytest.mark.parametrize(("name", "dim"), [
    ("resnet18", 512),
    ("shufflenet_v2_x0_5", 1024),
    ("squeezenet1_1", 512),
    ("mobilenet_v3_small", 1024),
])
def test_models_give_pooled_features(name: str, dim: int) -> None:
    backbone = create_backbone(f"torchvision:{name}")
    assert backbone.feature_dim == dim
    assert backbone.model_id == f"torchvision:{name}"
    assert backbone.data_config["mean"] == pytest.approx((0.485, 0.456, 0.406))
    backbone.module.eval()
    with torch.no_grad():
        out = backbone.module(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, dim)


def test_only_classification_models_are_listed() -> None:
    from dsc_backbones.torchvision_backbone import TorchvisionBackbone

    names = TorchvisionBackbone().list_models()
    assert "resnet18" in names and "vit_b_16" in names
    assert not any(n.startswith(("fasterrcnn", "deeplab", "raft", "r3d")) for n in names)


def test_pretrained_from_the_torch_hub_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torchvision.models

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="not in the local cache"):
        create_backbone("torchvision:shufflenet_v2_x0_5", pretrained=True)
    reference = torchvision.models.get_model("shufflenet_v2_x0_5", weights=None)
    url = torchvision.models.get_model_weights("shufflenet_v2_x0_5").DEFAULT.url
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / Path(url).name)
    backbone = create_backbone("torchvision:shufflenet_v2_x0_5", pretrained=True)
    torch.testing.assert_close(backbone.module.conv1[0].weight, reference.conv1[0].weight)
    assert backbone.weights_file == tmp_path / "hub" / "checkpoints" / Path(url).name   # recorded with its hash


def test_checkpoint_into_torchvision(tmp_path: Path) -> None:
    source = create_backbone("torchvision:shufflenet_v2_x0_5").module
    path = tmp_path / "w.pth"
    torch.save(source.state_dict(), path)
    loaded = create_backbone("torchvision:shufflenet_v2_x0_5", checkpoint=path)
    torch.testing.assert_close(loaded.module.conv1[0].weight, source.conv1[0].weight)
    assert loaded.weights_file == path and create_backbone("torchvision:shufflenet_v2_x0_5").weights_file is None
