from __future__ import annotations

import json

import pytest

from dsc.settings import BaselineSettings
from dsc.train.baseline import baseline, metrics_document

TINY = dict(backbone="timm:test_resnet", image_size=16, batch_size=12, epochs=2, lr=0.05, corruptions=False)


@pytest.mark.parametrize("ood_loss", ["none", "extra-class", "outlier-exposure"])
def test_baseline_end_to_end_writes_metrics(stores, tmp_path, ood_loss):
    neg = [] if ood_loss == "none" else [stores["ood"]]
    syn = [stores["synthetic"]] if ood_loss == "none" else []
    settings = BaselineSettings(**TINY, ood_loss=ood_loss, synthetic_policy="view")
    result = baseline(stores["data"], tmp_path / "run", settings, synthetic=syn, negatives=neg)
    assert result.status == "complete" and [r["epoch"] for r in result.metrics] == [1, 2]
    assert all("val_top1" in r for r in result.metrics)
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["schema"] == "dsc-metrics/1" and m["method"] == "ce" and m["classes"] == ["gear", "bolt", "spring"]
    assert m["selected_epoch"] == result.best_epoch
    assert m["val"]["top1"] == result.best_val and m["val"]["n"] == 6
    assert m["test"]["n"] == 6 and len(m["test"]["confusion"]) == 3  # K classes even with extra-class
    assert m["synthetic"]["ood_policy"] == (None if ood_loss == "none" else ood_loss)
    assert m["synthetic"]["label"] == ("normal" if ood_loss == "none" else "ood")   # negatives only: the ood arm
    assert "robustness" not in m


@pytest.mark.parametrize("synthetic, negatives, label", [
    ([], [], "none"), (["n"], [], "normal"), ([], ["o"], "ood"), (["n"], ["o"], "normal+ood")])
def test_metrics_label_names_the_arm_actually_trained(synthetic, negatives, label):
    rec = lambda name: {"path": f"{name}.h5", "fingerprint": f"fp-{name}"}  # noqa: E731
    info = {"inputs": {"data": rec("data"), "synthetic": [rec(s) for s in synthetic],
                       "negatives": [rec(s) for s in negatives]}}
    settings = BaselineSettings(ood_loss="outlier-exposure" if negatives else "none")
    doc = metrics_document(info, settings, val={"top1": 0.5, "n": 3}, selected_epoch=1, timings={}, evaluation={})
    assert doc["synthetic"]["label"] == label
    assert doc["synthetic"]["normal"] == [f"fp-{s}" for s in synthetic]
    assert doc["synthetic"]["ood"] == [f"fp-{s}" for s in negatives]


def test_negatives_need_an_ood_loss(stores, run_dsc):
    res = run_dsc("baseline", stores["data"], "--negatives", stores["ood"], "--backbone", "timm:test_resnet",
                  "--image-size", "16", "-o", "run")
    assert res.code == 1 and "--ood-loss" in res.err
