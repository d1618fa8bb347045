from __future__ import annotations

import numpy as np
import pytest
import torch

from dsc.backbones import create_backbone
from dsc.evaluate import (
    EvalOptions,
    evaluate_classifier,
    holdout_indices,
    in_distribution_indices,
    ood_indices,
)
from tests.evaluate.fakes import make_data_store, make_synthetic_store


@pytest.fixture
def model():
    torch.manual_seed(0)
    bb = create_backbone("timm:test_resnet")
    head = torch.nn.Linear(bb.feature_dim, 3)
    return bb, head


def test_row_selection(tmp_path):
    data = make_data_store(tmp_path / "d.h5", holdout=4)
    assert len(in_distribution_indices(data, "test")) == 12 and len(holdout_indices(data)) == 4
    assert (data.labels[in_distribution_indices(data, "train")] >= 0).all()
    # without a holdout column, label -1 marks held-out rows
    plain = make_data_store(tmp_path / "p.h5", holdout=2, holdout_column=False)
    assert len(holdout_indices(plain)) == 2 and len(in_distribution_indices(plain, "test")) == 12
    ood = make_synthetic_store(tmp_path / "o.h5", data, ood=True, evaluation_only=True)
    assert len(ood_indices(ood)) == 6
    normal = make_synthetic_store(tmp_path / "n.h5", data)
    assert len(ood_indices(normal)) == 0


def test_evaluate_classifier_all_fields(tmp_path, model):
    bb, head = model
    data = make_data_store(tmp_path / "d.h5", holdout=4)
    ood = make_synthetic_store(tmp_path / "o.h5", data, ood=True, evaluation_only=True)
    opts = EvalOptions(image_size=32, corruptions=["gaussian_noise", "jpeg"], severities=[1, 5])
    res = evaluate_classifier(bb, head, data, options=opts, ood_stores=[ood])
    assert set(res) == {"test", "robustness", "ood", "ood_stores", "timings"}
    assert res["test"]["n"] == 12 and len(res["test"]["confusion"]) == 3
    rob = res["robustness"]
    assert set(rob["per_corruption"]) == {"gaussian_noise", "jpeg"} and set(rob["per_corruption"]["jpeg"]) == {"1", "5"}
    assert rob["clean_top1"] == res["test"]["top1"]
    assert rob["mean_corruption_top1"] == pytest.approx(np.mean([v for d in rob["per_corruption"].values()
                                                                 for v in d.values()]))
    assert set(res["ood"]) == {"holdout", "synthetic"}
    assert set(res["ood"]["holdout"]) == {"msp", "energy", "knn"}
    assert res["ood"]["holdout"]["msp"]["n_out"] == 4 and res["ood"]["synthetic"]["knn"]["n_out"] == 6
    assert res["ood_stores"][0]["fingerprint"] == ood.fingerprint
    # features were cached in the options for reuse; a second call computes nothing new
    assert {"train", "test", "holdout", f"ood:{ood.fingerprint}"} <= set(opts.features)
    again = evaluate_classifier(bb, head, data, options=EvalOptions(image_size=32, corruptions=(),
                                                                    features=opts.features), ood_stores=[ood])
    assert "features" not in again["timings"] and again["test"] == res["test"]
    assert again["ood"] == res["ood"] and "robustness" not in again


def test_absent_fields_and_model_left_untouched(tmp_path, model):
    bb, head = model
    bb.module.train()
    data = make_data_store(tmp_path / "d.h5")
    res = evaluate_classifier(bb, head, data, options=EvalOptions(image_size=32, corruptions=()))
    assert "ood" not in res and "robustness" not in res and "ood_stores" not in res
    assert bb.module.training and head.training


def test_perfect_head_gives_perfect_metrics(tmp_path):
    """An 'encoder' that reads the class colour directly: top-1 1.0 and ECE near 0 with a sharp head."""
    data = make_data_store(tmp_path / "d.h5")

    class MeanColour(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    head = torch.nn.Linear(3, 3)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3) * 50)
        head.bias.zero_()
    res = evaluate_classifier(MeanColour(), head, data, options=EvalOptions(image_size=32, corruptions=()))
    assert res["test"]["top1"] == 1.0 and res["test"]["macro_f1"] == 1.0 and res["test"]["ece"] < 1e-3
