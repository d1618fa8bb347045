"""The mixed-precision path of pretrain and baseline (autocast, fp16 loss scaling, channels_last) run on the
CPU, where ``amp_dtype`` normally turns it off: the same code a GPU runs with ``--amp bf16|fp16``."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from dsc.settings import BaselineSettings, PretrainSettings
from dsc.train import loop
from dsc.train.baseline import baseline
from dsc.train.pretrain import pretrain

#: 32 px, not 16: at 16 px layer4 of test_resnet sees 1x1 feature maps, and there the CPU's bf16 convolution
#: weight gradient sometimes comes back non-finite from finite inputs and output gradients (torch 2.14,
#: with and without channels_last; recomputing the same batch gives finite values). dsc never autocasts on
#: the CPU, so only this test would meet it; the GPU check runs bf16 on CUDA.
# the ImageNet stem: autocast on CPU is slow on the small stem's 16x larger maps (tests/train/test_stem_runs.py)
TINY = dict(backbone="timm:test_resnet", image_size=32, batch_size=12, lr=0.05, stem="imagenet")
CASES = [(torch.bfloat16, True), (torch.bfloat16, False), (torch.float16, True)]


@pytest.fixture
def autocast_seen(monkeypatch):
    """Force ``dtype`` as the autocast dtype on the CPU and record the dtypes the encoder really computed in."""
    seen: list[torch.dtype] = []
    real_autocast = torch.autocast

    def force(dtype):
        monkeypatch.setattr(loop, "amp_dtype", lambda setting, device: dtype)

        def spy(*args, **kwargs):
            ctx = real_autocast(*args, **kwargs)
            if kwargs.get("enabled", True):
                seen.append(torch.get_autocast_dtype("cpu") if kwargs.get("dtype") is None else kwargs["dtype"])
            return ctx

        monkeypatch.setattr(torch, "autocast", spy)
        return seen

    return force


@pytest.mark.parametrize("dtype, channels_last", CASES)
def test_pretrain_under_autocast(stores, tmp_path, autocast_seen, dtype, channels_last):
    seen = autocast_seen(dtype)
    settings = PretrainSettings(**TINY, epochs=2, channels_last=channels_last)
    result = pretrain(stores["data"], tmp_path / "run", settings, negatives=[stores["ood"]])
    assert result.status == "complete" and dtype in seen
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.metrics)
    weights = load_file(str(tmp_path / "run" / "checkpoints" / "last.safetensors"))
    assert all(t.dtype == torch.float32 for t in weights.values() if t.is_floating_point())  # master weights: fp32
    state = json.loads((tmp_path / "run" / "checkpoints" / "last.json").read_text())
    assert ("scaler" in state) == (dtype == torch.float16)  # fp16 loss scaling is checkpointed for --resume
    if dtype == torch.float16:
        assert state["scaler"]["scale"] > 0


def test_fp16_resume_restores_the_loss_scale(stores, tmp_path, autocast_seen, monkeypatch):
    autocast_seen(torch.float16)
    settings = PretrainSettings(**TINY, epochs=2, channels_last=True)
    pretrain(stores["data"], tmp_path / "run", settings, stop_after=1)
    path = tmp_path / "run" / "checkpoints" / "last.json"
    state = json.loads(path.read_text())
    state["scaler"]["scale"] = 1024.0  # a value the fresh scaler (65536) would not have
    path.write_text(json.dumps(state))
    loaded: list[dict] = []
    real = torch.amp.GradScaler.load_state_dict
    monkeypatch.setattr(torch.amp.GradScaler, "load_state_dict",
                        lambda self, sd: (loaded.append(dict(sd)), real(self, sd))[1])
    result = pretrain(stores["data"], tmp_path / "run", settings, resume=True)
    assert result.status == "complete" and len(result.metrics) == 2
    assert [d["scale"] for d in loaded] == [1024.0]


@pytest.mark.parametrize("dtype, channels_last", CASES)
def test_baseline_under_autocast(stores, tmp_path, autocast_seen, dtype, channels_last):
    seen = autocast_seen(dtype)
    settings = BaselineSettings(**TINY, epochs=1, corruptions=False, channels_last=channels_last)
    result = baseline(stores["data"], tmp_path / "ce", settings)
    assert result.status == "complete" and dtype in seen
    metrics = json.loads((tmp_path / "ce" / "metrics.json").read_text())
    assert 0 <= metrics["test"]["top1"] <= 1 and torch.isfinite(torch.tensor(result.metrics[-1]["loss"]))
