from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from dsc.settings import PretrainSettings
from dsc.train.checkpoint import load_encoder
from dsc.train.common import DivergedError
from dsc.train.pretrain import PretrainTask, pretrain

TINY = dict(backbone="timm:test_resnet", image_size=16, batch_size=12, epochs=1, lr=0.05, knn_k=5)


def _settings(**kw) -> PretrainSettings:
    return PretrainSettings(**{**TINY, **kw})


def _rows(run) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time_s", "images_per_s", "data_wait_share")}
            for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


@pytest.mark.parametrize("case", ["real", "extra", "view", "negatives", "hard", "instance"])
def test_pretrain_end_to_end(stores, tmp_path, case):
    syn = [stores["synthetic"]] if case in ("extra", "view") else []
    neg = [stores["ood"]] if case in ("negatives", "hard", "instance") else []
    settings = _settings(synthetic_policy="view" if case == "view" else "extra", synthetic_probability=1.0,
                         ood_policy=case if neg else "negatives")
    result = pretrain(stores["data"], tmp_path / "run", settings, synthetic=syn, negatives=neg)
    assert result.status == "complete" and len(result.metrics) == 1
    row = result.metrics[0]
    assert set(row) >= {"epoch", "loss", "lr", "images_per_s", "data_wait_share", "time_s", "val_knn_top1"}
    assert torch.isfinite(torch.tensor(row["loss"])) and 0 <= row["val_knn_top1"] <= 1
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "complete" and info["inputs"]["data"]["fingerprint"]
    assert info["data_counts"]["negatives"] == (18 if neg else 0)
    assert info["batch"]["negatives_per_batch"] == (6 if neg else 0)  # 18 of 36 images are negatives
    tensors = load_file(str(tmp_path / "run" / "checkpoints" / "best.safetensors"))
    assert any(k.startswith("encoder.") for k in tensors) and any(k.startswith("head.") for k in tensors)
    backbone, run_info = load_encoder(tmp_path / "run")
    assert backbone.feature_dim == 96 and run_info["backbone"]["name"] == "timm:test_resnet"
    assert torch.equal(backbone.module.state_dict()["conv1.0.weight"], tensors["encoder.conv1.0.weight"])


def test_same_seed_identical_and_resume_is_exact(stores, tmp_path):
    s = _settings(epochs=2, batch_size=12)
    full = pretrain(stores["data"], tmp_path / "a", s, negatives=[stores["ood"]])
    # a prefetch thread (--workers 1) prepares the same batches in the same order
    again = pretrain(stores["data"], tmp_path / "b", s.model_copy(update={"workers": 1}), negatives=[stores["ood"]])
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")
    part = pretrain(stores["data"], tmp_path / "c", s, negatives=[stores["ood"]], stop_after=1)
    assert part.status == "stopped" and json.loads((tmp_path / "c" / "run.json").read_text())["status"] == "interrupted"
    resumed = pretrain(stores["data"], tmp_path / "c", s, negatives=[stores["ood"]], resume=True)
    assert resumed.status == "complete" and full.best_epoch == resumed.best_epoch == again.best_epoch
    a = load_file(str(tmp_path / "a" / "checkpoints" / "last.safetensors"))
    c = load_file(str(tmp_path / "c" / "checkpoints" / "last.safetensors"))
    assert a.keys() == c.keys() and all(torch.equal(a[k], c[k]) for k in a)
    assert _rows(tmp_path / "a") == _rows(tmp_path / "c")


def test_nan_loss_stops_and_keeps_last_good_checkpoint(stores, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = PretrainTask.compute

    def flaky(self, model, batch, ctx):
        loss = original(self, model, batch, ctx)
        calls["n"] += 1
        return loss * float("nan") if calls["n"] > 2 else loss

    monkeypatch.setattr(PretrainTask, "compute", flaky)
    with pytest.raises(DivergedError, match="epoch 2"):
        pretrain(stores["data"], tmp_path / "run", _settings(epochs=3, batch_size=12))
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "failed" and "nan" in info["error"]
    last = json.loads((tmp_path / "run" / "checkpoints" / "last.json").read_text())
    assert last["epoch"] == 1


def test_cli_pretrain_refuses_changed_settings_on_resume(stores, run_dsc):
    args = ["pretrain", stores["data"], "--backbone", "timm:test_resnet", "--image-size", "16", "--batch-size",
            "12", "--epochs", "1", "-o", "run"]
    res = run_dsc(*args)
    assert res.code == 0, res
    assert "complete" in res.out
    again = run_dsc(*args)
    assert again.code == 1 and "already exists" in again.err
    changed = run_dsc(*args[:-2], "--lr", "0.2", "-o", "run", "--resume")
    assert changed.code == 1 and "lr: 0.05 -> 0.2" in changed.err and "Traceback" not in changed.err
    bad = run_dsc("pretrain", stores["data"], "--synthetic", stores["ood"], "--backbone", "timm:test_resnet",
                  "-o", "run2")
    assert bad.code == 1 and "no in-distribution rows" in bad.err


def test_without_val_rows_the_last_epoch_is_best(tmp_path):
    from dsc.testing import pattern_store

    data = pattern_store(tmp_path / "noval.h5", per_class=(4, 0, 2))
    result = pretrain(data, tmp_path / "run", _settings(epochs=2, batch_size=8))
    assert result.best_epoch == 2 and result.best_val is None
    assert [r["val_knn_top1"] for r in _rows(tmp_path / "run")] == [None, None]
    assert json.loads((tmp_path / "run" / "checkpoints" / "best.json").read_text())["epoch"] == 2
