"""Pretrained-backbone protocols: `dsc baseline --protocol linear` trains only the linear layer on a frozen
encoder (the frozen-features baseline), every run records the weights file it started from and its hash,
and the report names each run's protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dsc.testing import pattern_store

TRAIN = ["--backbone", "timm:test_resnet", "--image-size", "16", "--batch-size", "8", "--epochs", "2",
         "--no-corruptions"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return pattern_store(tmp_path / "data.h5", per_class=(6, 2, 2))


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A tiny model's weights saved to a file, loaded back the way a user passes their own (--checkpoint)."""
    from dsc.backbones import create_backbone

    torch.manual_seed(3)
    backbone = create_backbone("timm:test_resnet", stem="small", image_size=16)
    path = tmp_path / "encoder.safetensors"
    save_file({k: v.contiguous() for k, v in backbone.module.state_dict().items()}, str(path))
    return path


def _encoder(run: Path) -> dict[str, torch.Tensor]:
    return {k.removeprefix("encoder."): v for k, v in load_file(str(run / "checkpoints" / "best.safetensors")).items()
            if k.startswith("encoder.")}


def test_linear_protocol_trains_only_the_linear_layer(run_dsc, data: Path, weights: Path, tmp_path: Path) -> None:
    start = load_file(str(weights))
    for protocol in ("linear", "fine-tune"):
        out = tmp_path / protocol
        res = run_dsc("baseline", data, *TRAIN, "--stem", "small", "--checkpoint", weights, "--protocol", protocol,
                      "-o", out)
        assert res.code == 0, res
        trained = _encoder(out)
        same = all(torch.equal(trained[k], start[k]) for k in start)   # weights and BatchNorm statistics
        assert same == (protocol == "linear"), protocol
        info = json.loads((out / "run.json").read_text())
        assert info["settings"]["protocol"] == protocol
        assert info["backbone"]["weights"]["file"] == str(weights.resolve())
        from dsc.provenance import file_sha256

        assert info["backbone"]["weights"]["sha256_16"] == file_sha256(weights)[:16]
        assert json.loads((out / "metrics.json").read_text())["test"]["n"] > 0


def test_random_init_records_no_weights_file_and_linear_warns(run_dsc, data: Path, tmp_path: Path) -> None:
    res = run_dsc("baseline", data, *TRAIN, "--protocol", "linear", "-o", tmp_path / "r")
    assert res.code == 0, res
    assert "randomly initialised, frozen encoder" in res.err
    assert json.loads((tmp_path / "r" / "run.json").read_text())["backbone"]["weights"] is None
