"""--stem in training runs: resolved at the start, logged, recorded in run.json, replayed by probe and report."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from torch import nn

from dsc.errors import MismatchError
from dsc.probe import probe
from dsc.settings import BaselineSettings, PretrainSettings, ProbeSettings
from dsc.train.baseline import baseline
from dsc.train.checkpoint import load_encoder
from dsc.train.common import build_backbone
from dsc.train.pretrain import pretrain

TINY = dict(image_size=16, batch_size=12, epochs=1, lr=0.05)


def test_auto_small_stem_is_logged_recorded_and_replayed_by_probe(stores, tmp_path, caplog):
    run = tmp_path / "run"
    settings = PretrainSettings(backbone="timm:resnet18", knn_k=5, **TINY)
    with caplog.at_level(logging.INFO, logger="dsc.backbones"):
        result = pretrain(stores["data"], run, settings)
    assert result.status == "complete"
    assert "stem small (auto: image_size 16 <= 31, ResNet, random init)" in caplog.text
    info = json.loads((run / "run.json").read_text())
    assert info["settings"]["stem"] == "auto"
    assert info["backbone"]["stem"] == "small"
    assert info["backbone"]["stem_reason"] == "auto: image_size 16 <= 31, ResNet, random init"

    encoder, _ = load_encoder(run, "best")
    assert encoder.stem == "small" and encoder.module.conv1.kernel_size == (3, 3)
    assert isinstance(encoder.module.maxpool, nn.Identity)
    m = probe(run, ProbeSettings(epochs=2, corruptions=False, device="cpu")).metrics
    assert m["val"]["n"] == 6 and m["test"]["n"] == 6

    # the record is what makes the checkpoint loadable: without it the ImageNet 7x7 conv1 does not fit
    del info["backbone"]["stem"]
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(MismatchError, match="does not fit"):
        load_encoder(run, "best")


def test_explicit_imagenet_stem_and_runs_without_a_stem_record(stores, tmp_path):
    run = tmp_path / "run"
    settings = BaselineSettings(backbone="timm:test_resnet", stem="imagenet", corruptions=False, **TINY)
    assert baseline(stores["data"], run, settings).status == "complete"
    info = json.loads((run / "run.json").read_text())
    assert (info["backbone"]["stem"], info["backbone"]["stem_reason"]) == ("imagenet", "requested")
    encoder, _ = load_encoder(run, "best")
    assert isinstance(encoder.module.maxpool, nn.MaxPool2d) and encoder.module.conv1[0].stride == (2, 2)
    del info["backbone"]["stem"], info["backbone"]["stem_reason"]  # a run made before --stem existed
    (run / "run.json").write_text(json.dumps(info))
    encoder, _ = load_encoder(run, "best")
    assert encoder.stem == "imagenet" and isinstance(encoder.module.maxpool, nn.MaxPool2d)


def test_build_backbone_is_reproducible_with_the_small_stem():
    settings = BaselineSettings(backbone="timm:resnet18", image_size=24)

    def state(seed: int) -> dict[str, torch.Tensor]:
        backbone = build_backbone(settings, seed)
        assert backbone.stem == "small"
        return backbone.module.state_dict()

    a, b, c = state(0), state(0), state(1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


def test_cli_stem_option_and_its_errors(stores, run_dsc, tmp_path):
    res = run_dsc("baseline", stores["data"], "--backbone", "timm:test_convnext", "--stem", "small",
                  "--image-size", "16", "--batch-size", "12", "--epochs", "1", "--no-corruptions", "-o", "run")
    assert res.code == 1 and "Traceback" not in res.err
    assert "--stem small needs a timm or torchvision ResNet; timm:test_convnext is not one" in res.err
    assert "--stem auto or imagenet" in res.err
    bad = run_dsc("pretrain", stores["data"], "--stem", "tiny", "-o", "run2")
    assert bad.code == 1 and "stem" in bad.err and "Traceback" not in bad.err
    ok = run_dsc("pretrain", stores["data"], "--backbone", "timm:test_resnet", "--stem", "imagenet",
                 "--image-size", "16", "--batch-size", "12", "--epochs", "1", "-o", "run3")
    assert ok.code == 0, ok
    info = json.loads((tmp_path / "run3" / "run.json").read_text())  # the tests run in tmp_path
    assert info["settings"]["stem"] == info["backbone"]["stem"] == "imagenet"
