from __future__ import annotations

import json

import numpy as np
import pytest


def test_quality_report_flags_copies_and_fake_ood(run_dsc, stores):
    data, aug = stores
    res = run_dsc("report", "--synthetic", aug, "--data", data, "--json")
    assert res.code == 0, res
    q = json.loads(res.out)["quality"]
    assert q["classifier_val_top1"] == 1.0
    store = q["stores"][0]
    assert store["n"] == 30 and store["n_ood"] == 12
    gear, bolt = store["classes"]["gear"], store["classes"]["bolt"]
    assert gear["normal"]["n"] == 6 and gear["normal"]["near_copies"] == 2     # two exact copies
    assert bolt["normal"]["near_copies"] == 0
    assert all(c["normal"]["acceptance"] == 1.0 for c in store["classes"].values())
    assert bolt["ood"]["still_source"] == pytest.approx(0.75)                    # 3 of 4 look like bolts
    assert gear["ood"]["still_source"] == 0.0
    assert gear["ood"]["fd"] > 10 * gear["normal"]["fd"]
    table = run_dsc("report", "--synthetic", aug, "--data", data, "--features", "pixels")
    assert table.code == 0 and "near-copies" in table.out and "pixel statistics" in table.out


def test_quality_needs_data(run_dsc, stores):
    res = run_dsc("report", "--synthetic", stores[1])
    assert res.code == 1 and "--data" in res.err


def test_quality_refuses_store_from_other_data(run_dsc, stores, tmp_path):
    from dsc.testing import report_stores

    other = tmp_path / "other"
    other.mkdir()
    data2, _ = report_stores(other, near_copies=0)
    import h5py

    with h5py.File(data2, "a") as h5:
        h5.attrs["fingerprint"] = "0123456789abcdef"
    res = run_dsc("report", "--synthetic", stores[1], "--data", data2)
    assert res.code == 1 and "fingerprint" in res.err


def _tiny_run(root, classes=3, probe=False):
    """A run directory with a timm:test_resnet encoder and a linear classifier (random weights)."""
    import torch

    from dsc.backbones import create_backbone
    from dsc.train.checkpoint import save_checkpoint

    run = root / ("probed" if probe else "base")
    run.mkdir()
    bb = create_backbone("timm:test_resnet")
    gen = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(bb.feature_dim, classes + 1)            # + an extra-class output to be dropped
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen))
    parts = {"encoder": bb.module} if probe else {"encoder": bb.module, "classifier": head}
    save_checkpoint(run, "best", parts, {"epoch": 1})
    if probe:
        from safetensors.torch import save_file

        (run / "probe").mkdir()
        save_file({f"classifier.{k}": v.contiguous() for k, v in head.state_dict().items()},
                  str(run / "probe" / "classifier.safetensors"))
    (run / "run.json").write_text(json.dumps({
        "command_name": "pretrain" if probe else "baseline", "backbone": {"name": "timm:test_resnet"},
        "settings": {"image_size": 32}, "classes": ["gear", "bolt", "nut"]}))
    return run, bb, head


@pytest.mark.parametrize("probe", [False, True])
def test_confidence_filter_scores_source_class(tmp_path, stores, probe):
    import torch

    from dsc.evaluate.features import extract_features, normalisation
    from dsc.evaluate.filter import confidence_filter
    from dsc.store import open_store

    run, bb, head = _tiny_run(tmp_path, probe=probe)
    aug = open_store(stores[1])
    rows = np.arange(8)
    images, labels = aug.images(rows), aug.column("source_label")[rows]
    scores = confidence_filter(run, images, labels)
    mean, std = normalisation(bb.data_config)
    feats = extract_features(bb.module.eval(), aug, rows, image_size=32, mean=mean, std=std)
    with torch.no_grad():
        probs = torch.softmax(feats @ head.weight[:3].T + head.bias[:3], dim=1).numpy()
    assert scores.shape == (8,)
    np.testing.assert_allclose(scores, probs[np.arange(8), labels], rtol=1e-4, atol=1e-6)
    with pytest.raises(Exception, match="uint8"):
        confidence_filter(run, images.astype(np.float32), labels)
    with pytest.raises(Exception, match="source labels"):
        confidence_filter(run, images, labels + 5)


def test_quality_with_encoder_and_classifier_runs(run_dsc, tmp_path, stores):
    run, _, _ = _tiny_run(tmp_path)
    res = run_dsc("report", "--synthetic", stores[1], "--data", stores[0], "--encoder", run, "--classifier", run,
                  "--json")
    assert res.code == 0, res
    q = json.loads(res.out)["quality"]
    assert "encoder of base" in q["feature_space"] and "classifier of run base" in q["classifier"]
    assert q["stores"][0]["classes"]["gear"]["normal"]["near_copies"] == 2
