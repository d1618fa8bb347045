"""The small-image stem of ResNet backbones (dsc/stems.py, create_backbone(stem=...))."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from dsc.backbones import create_backbone
from dsc.errors import ConfigError
from dsc.stems import SMALL_STEM_MAX_SIZE, choose_early
from dsc.threads import one_torch_thread


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


def _last_stage_map(module: nn.Module, size: int) -> tuple[int, int]:
    """Height and width of the last ResNet stage's output for a ``size`` px input."""
    seen: list[tuple[int, int]] = []
    handle = module.layer4.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[-2:])))
    module.eval()
    with torch.no_grad():
        module(torch.zeros(2, 3, size, size))
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("spec", ["timm:resnet18", "torchvision:resnet18", "timm:test_resnet"])
@pytest.mark.parametrize(("stem", "side"), [("imagenet", 1), ("small", 4)])
def test_last_stage_map_at_32_px(spec: str, stem: str, side: int) -> None:
    """The ImageNet stem leaves 1x1 of a 32 px image (/32), the small stem 4x4 (/8)."""
    backbone = create_backbone(spec, stem=stem, image_size=32)
    assert backbone.stem == stem
    assert _last_stage_map(backbone.module, 32) == (side, side)


def test_default_is_the_library_model() -> None:
    backbone = create_backbone("timm:resnet18")
    assert backbone.stem == "imagenet" and isinstance(backbone.module.maxpool, nn.MaxPool2d)
    assert backbone.module.conv1.kernel_size == (7, 7) and backbone.module.conv1.stride == (2, 2)


@pytest.mark.parametrize("spec", ["timm:resnet18", "torchvision:resnet18"])
def test_small_stem_is_a_3x3_stride_1_conv_without_max_pool(spec: str) -> None:
    module = create_backbone(spec, stem="small").module
    conv = module.conv1
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.bias) == (
        3, 64, (3, 3), (1, 1), (1, 1), None)
    assert isinstance(module.maxpool, nn.Identity)


def test_deep_stem_keeps_its_convs_and_runs_the_first_at_stride_1() -> None:
    """timm's deep stems (ResNet-C/D/T, test_resnet): same weights and shapes, first conv at stride 1."""
    torch.manual_seed(0)
    imagenet = create_backbone("timm:test_resnet").module
    torch.manual_seed(0)
    small = create_backbone("timm:test_resnet", stem="small").module
    assert small.conv1[0].stride == (1, 1) and isinstance(small.maxpool, nn.Identity)
    a, b = imagenet.state_dict(), small.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key])


@pytest.mark.parametrize(("spec", "size", "stem", "reason"), [
    ("timm:test_resnet", 16, "small", "auto: image_size 16 <= 31"),
    ("timm:test_resnet", SMALL_STEM_MAX_SIZE, "small", "<= 31"),
    ("timm:test_resnet", SMALL_STEM_MAX_SIZE + 1, "imagenet", "auto: image_size 32 > 31"),
    ("torchvision:resnet18", 24, "small", "ResNet, random init"),
    ("timm:test_convnext", 24, "imagenet", "timm:test_convnext is not a timm or torchvision ResNet"),
    ("timm:test_byobnet", 24, "imagenet", "is not a timm or torchvision ResNet"),
    ("torchvision:shufflenet_v2_x0_5", 24, "imagenet", "is not a timm or torchvision ResNet"),
])
def test_auto_rules(spec: str, size: int, stem: str, reason: str) -> None:
    backbone = create_backbone(spec, stem="auto", image_size=size)
    assert backbone.stem == stem
    assert reason in backbone.stem_reason


def test_auto_keeps_the_stem_of_initial_weights(tmp_path: Path) -> None:
    """Pretrained or --checkpoint weights were trained with some stem: auto does not discard their conv1."""
    assert choose_early("auto", image_size=24, initial_weights=True).stem == "imagenet"
    assert choose_early("auto", image_size=24, initial_weights=False) is None  # decided by the model
    path = tmp_path / "w.pth"
    torch.save(create_backbone("timm:resnet18").module.state_dict(), path)
    backbone = create_backbone("timm:resnet18", checkpoint=path, stem="auto", image_size=24)
    assert backbone.stem == "imagenet" and "pretrained or --checkpoint" in backbone.stem_reason
    assert backbone.module.conv1.kernel_size == (7, 7)


@pytest.mark.parametrize("spec", ["timm:test_convnext", "torchvision:shufflenet_v2_x0_5"])
def test_small_on_a_model_without_a_resnet_stem_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match=f"--stem small needs a timm or torchvision ResNet; {spec} is not") as info:
        create_backbone(spec, stem="small", image_size=32)
    assert "--stem auto or imagenet" in (info.value.hint or "")


def test_unknown_stem_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown stem 'tiny'"):
        create_backbone("timm:test_resnet", stem="tiny")


@pytest.mark.parametrize("spec", ["timm:resnet18", "torchvision:resnet18"])
def test_new_conv_init_is_seeded_and_kaiming_fan_out(spec: str) -> None:
    def conv1(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return create_backbone(spec, stem="small").module.conv1.weight.detach().clone()

    first, again, other = conv1(3), conv1(3), conv1(4)
    torch.testing.assert_close(first, again)
    assert not torch.equal(first, other)
    expected_std = (2.0 / (64 * 3 * 3)) ** 0.5  # kaiming normal, fan_out = out_channels * kernel area
    assert abs(float(first.std()) / expected_std - 1) < 0.1


def test_small_stem_checkpoint_loads_after_the_swap(tmp_path: Path) -> None:
    """--checkpoint with --stem small: the file's 3x3 conv1 fits (it is loaded after the swap)."""
    source = create_backbone("timm:resnet18", stem="small").module.eval()
    path = tmp_path / "small.pth"
    torch.save(source.state_dict(), path)
    loaded = create_backbone("timm:resnet18", stem="small", checkpoint=path).module.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x))


def test_pretrained_with_explicit_small_stem_keeps_the_other_layers(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import torchvision.models

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = torchvision.models.get_model("resnet18", weights=None)
    url = torchvision.models.get_model_weights("resnet18").DEFAULT.url
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / Path(url).name)

    auto = create_backbone("torchvision:resnet18", pretrained=True, stem="auto", image_size=32)
    assert auto.stem == "imagenet"
    torch.testing.assert_close(auto.module.conv1.weight, reference.conv1.weight)
    with caplog.at_level(logging.WARNING, logger="dsc.stems"):
        small = create_backbone("torchvision:resnet18", pretrained=True, stem="small", image_size=32)
    assert small.stem == "small" and small.module.conv1.kernel_size == (3, 3)
    torch.testing.assert_close(small.module.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    torch.testing.assert_close(small.module.bn1.weight, reference.bn1.weight)
    assert "pretrained weights of the replaced stem layers are discarded" in caplog.text
