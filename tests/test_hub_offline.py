"""``hf-hub:`` backbones come from the local Hugging Face cache only: no network, a fast one-line error
naming the cache folder and the download command when they are not there (issue 12)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from dsc.backbones import check_backbone, create_backbone
from dsc.errors import ModelError

REPO = "timm/test_resnet.r160_in1k"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any download attempt fails the test (timm and huggingface_hub entry points)."""
    import huggingface_hub
    import huggingface_hub.file_download
    import timm.models._hub

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access: {args} {kwargs}")

    for module in (huggingface_hub, huggingface_hub.file_download, timm.models._hub):
        monkeypatch.setattr(module, "hf_hub_download", refuse, raising=False)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def _cache_entry(hub: Path, *, weights: bool) -> torch.nn.Module:
    """The repository as `hf download` leaves it: refs/main -> snapshots/<sha>/{config.json, model.safetensors}."""
    import timm
    from safetensors.torch import save_file

    reference = timm.create_model("test_resnet")
    repo = hub / ("models--" + REPO.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snap = repo / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    cfg = {"architecture": "test_resnet", "num_classes": 1000,
           "pretrained_cfg": {"input_size": [3, 160, 160], "mean": [0.485, 0.456, 0.406],
                              "std": [0.229, 0.224, 0.225], "num_classes": 1000, "interpolation": "bicubic",
                              "crop_pct": 0.95, "first_conv": "conv1.0", "classifier": "fc"}}
    (snap / "config.json").write_text(json.dumps(cfg))
    if weights:
        save_file(reference.state_dict(), str(snap / "model.safetensors"))
    return reference


@pytest.mark.parametrize("offline", ["1", "0"])
def test_not_cached_fails_fast_with_the_cache_path_and_the_fix(hub: Path, no_network, monkeypatch, offline) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", offline)  # online or not, a backbone is never downloaded
    start = time.perf_counter()
    with pytest.raises(ModelError) as info:
        create_backbone(f"hf-hub:{REPO}")
    assert time.perf_counter() - start < 10
    text = str(info.value)
    assert "not in the local Hugging Face cache" in text and str(hub / "models--timm--test_resnet.r160_in1k") in text
    assert f"hf download {REPO}" in (info.value.hint or "")
    with pytest.raises(ModelError, match="not in the local Hugging Face cache"):
        check_backbone(f"hf-hub:{REPO}")


def test_built_from_the_cache_without_network(hub: Path, no_network) -> None:
    _cache_entry(hub, weights=False)
    backbone = create_backbone(f"hf-hub:{REPO}")
    assert backbone.model_id == f"timm:hf-hub:{REPO}" and backbone.data_config["input_size"] == (3, 160, 160)
    with torch.no_grad():
        assert backbone.module.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, backbone.feature_dim)


def test_pretrained_weights_from_the_cache_without_network(hub: Path, no_network) -> None:
    reference = _cache_entry(hub, weights=True)
    backbone = create_backbone(f"hf-hub:{REPO}", pretrained=True)
    torch.testing.assert_close(backbone.module.state_dict()["conv1.0.weight"], reference.state_dict()["conv1.0.weight"])
    assert backbone.weights_file is not None and backbone.weights_file.is_file()


def test_pretrained_without_cached_weights_names_them(hub: Path, no_network) -> None:
    _cache_entry(hub, weights=False)
    check_backbone(f"hf-hub:{REPO}")  # the architecture alone is there
    with pytest.raises(ModelError, match="weights of timm model .* are not in the local Hugging Face cache"):
        check_backbone(f"hf-hub:{REPO}", pretrained=True)
