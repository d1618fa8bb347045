from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_toyparts_pretrain_probe_baseline(run_dsc, tmp_path):
    """The demo path on generated toyparts data: subset -> pretrain -> probe, and baseline."""
    data = tmp_path / "data.h5"
    res = run_dsc("subset", "--dataset", "toyparts", "--classes", "3", "--holdout-classes", "1",
                  "--resolution", "32", "--seed", "0", "--output", data)
    assert res.code == 0, res
    tiny = ["--backbone", "timm:test_resnet", "--image-size", "32", "--batch-size", "16", "--epochs", "2"]
    res = run_dsc("pretrain", data, *tiny, "-o", tmp_path / "supcon")
    assert res.code == 0, res
    res = run_dsc("probe", tmp_path / "supcon", "--epochs", "5")
    assert res.code == 0, res
    probe = json.loads((tmp_path / "supcon" / "probe" / "metrics.json").read_text())
    assert probe["method"] == "supcon+probe" and 0 <= probe["test"]["top1"] <= 1
    res = run_dsc("baseline", data, *tiny, "--no-corruptions", "-o", tmp_path / "ce")
    assert res.code == 0, res
    ce = json.loads((tmp_path / "ce" / "metrics.json").read_text())
    assert ce["method"] == "ce" and ce["classes"] == probe["classes"]
    assert ce["test"]["n"] == probe["test"]["n"]  # the same test rows (held-out class excluded)
    assert "holdout" in ce["ood"]
