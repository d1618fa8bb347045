"""Soft labels of mixed (diff-mix) synthetic images: the loader, cross-entropy on soft targets, the SupCon rule."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from dsc.data.stores import load_synthetic
from dsc.errors import InputError
from dsc.settings import BaselineSettings, PretrainSettings
from dsc.store import open_store
from dsc.testing import synthetic_store
from dsc.train.baseline import BaselineTask, baseline
from dsc.train.mixing import soft_targets, supcon_labels, view_usable
from dsc.train.pretrain import pretrain
from tests.train.conftest import MIX_WEIGHTS, add_mix_columns

TINY = dict(backbone="timm:test_resnet", image_size=16, batch_size=12, epochs=2, lr=0.05)


def _rows(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time_s", "images_per_s", "data_wait_share")}
            for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def _same_checkpoints(a: Path, b: Path) -> bool:
    x, y = (load_file(str(p / "checkpoints" / "last.safetensors")) for p in (a, b))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


# ------------------------------------------------------------------------------------------------ loading
def test_loader_reads_the_soft_label_columns(stores, mixed):
    syn = load_synthetic(open_store(mixed), 16, ood=False, n_classes=3)
    w = np.resize(np.asarray(MIX_WEIGHTS, dtype=np.float32), len(syn))
    assert torch.equal(syn.mix_weight, torch.from_numpy(w))
    assert torch.equal(syn.other_label[syn.mixed], (syn.source_label[syn.mixed] + 1) % 3)
    assert torch.equal(syn.labels, torch.where(syn.mix_weight > 0.5, syn.other_label, syn.source_label))
    plain = load_synthetic(open_store(stores["synthetic"]), 16, ood=False, n_classes=3)  # no column: w = 0
    assert not plain.mixed.any() and torch.equal(plain.other_label, plain.labels)


def test_loader_refuses_bad_weights_and_missing_other_label(stores, tmp_path):
    bad = add_mix_columns(synthetic_store(tmp_path / "bad.h5", stores["data"], ood=False, per_image=1),
                          weights=(0.2, 1.5))
    with pytest.raises(InputError, match=r"mix_weight values outside \[0, 1\]"):
        load_synthetic(open_store(bad), 16, ood=False, n_classes=3)
    lone = add_mix_columns(synthetic_store(tmp_path / "lone.h5", stores["data"], ood=False, per_image=1))
    with h5py.File(lone, "r+") as h5:
        del h5["samples"]["other_label"]
    with pytest.raises(InputError, match="no other_label column"):
        load_synthetic(open_store(lone), 16, ood=False, n_classes=3)


# ------------------------------------------------------------------------------------------ cross-entropy
def _ce_task(**settings) -> BaselineTask:
    task = BaselineTask.__new__(BaselineTask)  # compute() needs only the settings and K
    task.settings, task.k = BaselineSettings(**settings), 3
    return task


CTX = SimpleNamespace(env=SimpleNamespace(device=torch.device("cpu")), amp=None)


def _ce_batch():
    """Row 0 hard (class 2); row 1 a mix of class 0 (0.3) and class 1 (w = 0.7, its dominant label);
    row 2 OOD."""
    logits = torch.tensor([[0.2, -1.0, 1.5, 0.3], [1.0, 0.5, -0.5, 0.1], [0.0, 0.3, 0.9, -0.2]])
    return logits, {"x": logits, "labels": torch.tensor([2, 1, -1]), "is_ood": torch.tensor([False, False, True]),
                    "source": torch.tensor([2, 0, 0]), "other": torch.tensor([2, 1, 0]),
                    "weight": torch.tensor([0.0, 0.7, 0.0])}


def test_soft_cross_entropy_equals_the_formula_by_hand():
    logits, batch = _ce_batch()
    logp = F.log_softmax(logits[:2, :3], dim=1)
    hand = (-logp[0, 2] + -(0.3 * logp[1, 0] + 0.7 * logp[1, 1])) / 2
    got = _ce_task()._ce(logits[:, :3], batch)
    torch.testing.assert_close(got, hand)
    # label smoothing eps: the target (1 - eps) q + eps / K, on hard and soft rows alike
    eps = 0.1
    q = torch.tensor([[0, 0, 1.0], [0.3, 0.7, 0]]) * (1 - eps) + eps / 3
    torch.testing.assert_close(_ce_task(label_smoothing=eps)._ce(logits[:, :3], batch), -(q * logp).sum(1).mean())


def test_soft_cross_entropy_with_ood_losses():
    logits, batch = _ce_batch()
    logp3 = F.log_softmax(logits[:, :3], dim=1)
    oe = -logp3[2].mean()
    hand = (-logp3[0, 2] - 0.3 * logp3[1, 0] - 0.7 * logp3[1, 1]) / 2 + 0.5 * oe
    torch.testing.assert_close(_ce_task(ood_loss="outlier-exposure")._ce(logits[:, :3], batch), hand)
    logp4 = F.log_softmax(logits, dim=1)  # extra-class: the OOD row is class K = 3
    hand = (-logp4[0, 2] - 0.3 * logp4[1, 0] - 0.7 * logp4[1, 1] - logp4[2, 3]) / 3
    torch.testing.assert_close(_ce_task(ood_loss="extra-class")._ce(logits, batch), hand)


def test_batches_without_a_mixed_row_use_the_hard_loss_exactly():
    logits, batch = _ce_batch()
    batch["weight"] = torch.zeros(3)
    hard = F.cross_entropy(logits[:2, :3], batch["labels"][:2], label_smoothing=0.1)
    assert torch.equal(_ce_task(label_smoothing=0.1)._ce(logits[:, :3], batch), hard)


def test_soft_targets():
    q = soft_targets(torch.tensor([2, 1]), torch.tensor([2, 0]), torch.tensor([2, 1]), torch.tensor([0.0, 0.25]), 3)
    assert torch.equal(q, torch.tensor([[0, 0, 1.0], [0.75, 0.25, 0]]))


# --------------------------------------------------------------------------------------------- SupCon rule
#: Hand-made rows: hard (w 0), Diff-Mix's w for s = 0.5, 0.7, 0.9, a tie, and w = 0.2 (class i dominant).
W = torch.tensor([0.0, 0.574, 0.752, 0.919, 0.5, 0.2])
SRC, OTHER = torch.tensor([0, 0, 0, 1, 1, 2]), torch.tensor([0, 1, 2, 2, 0, 1])
LABELS = torch.where(W > 0.5, OTHER, SRC)


@pytest.mark.parametrize("rule, threshold, labels, left_out", [
    ("dominant", 0.7, [0, 1, 2, 2, 1, 2], [False, True, False, False, True, False]),
    ("dominant", 0.6, [0, 1, 2, 2, 1, 2], [False, True, False, False, True, False]),
    ("dominant", 0.5, [0, 1, 2, 2, 1, 2], [False, False, False, False, True, False]),
    ("dominant", 0.9, [0, 1, 2, 2, 1, 2], [False, True, True, False, True, True]),
    ("source", 0.7, [0, 0, 0, 1, 1, 2], [False] * 6),
    ("drop", 0.7, LABELS.tolist(), [False, True, True, True, True, True]),
])
def test_supcon_rule_labels_and_left_out_rows(rule, threshold, labels, left_out):
    got, pairs = supcon_labels(LABELS, SRC, OTHER, W, rule, threshold)
    assert pairs[:, 0].ge(0).tolist() == left_out
    assert got[~pairs[:, 0].ge(0)].tolist() == [x for x, o in zip(labels, left_out, strict=True) if not o]
    out = pairs[pairs[:, 0] >= 0]
    assert torch.equal(out, torch.stack([SRC, OTHER], 1)[pairs[:, 0] >= 0])  # (i, j) of each left-out row


def test_supcon_rule_masks_on_a_batch():
    """Which rows are anchors and which are positives of whom, in the loss, under each rule."""
    from dsc.losses import SupConLoss

    loss = SupConLoss()
    z = torch.randn(6, 2, 4, generator=torch.Generator().manual_seed(0))
    for rule in ("dominant", "source", "drop"):
        labels, pairs = supcon_labels(LABELS, SRC, OTHER, W, rule, 0.7)
        left = pairs[:, 0] >= 0
        groups = loss._groups(SimpleNamespace(features=z, labels=labels, is_ood=None, mixed_classes=pairs), 2)[:6]
        assert (groups < 0).tolist() == left.tolist()  # left-out rows: in no positive group (no anchor)
        for a in range(6):
            for b in range(6):
                if not left[a] and not left[b]:
                    assert bool(groups[a] == groups[b]) == bool(labels[a] == labels[b])


def test_view_usable_only_variants_kept_as_their_source_class():
    assert view_usable(SRC, OTHER, W, "dominant", 0.7).tolist() == [True, False, False, False, False, True]
    assert view_usable(SRC, OTHER, W, "source", 0.7).all()
    assert view_usable(SRC, OTHER, W, "drop", 0.7).tolist() == [True] + [False] * 5


# ------------------------------------------------------------------------------------------------ end to end
def test_store_without_the_column_trains_as_one_with_zero_weights(stores, tmp_path):
    """w = 0 everywhere is a hard-label run: same losses, same weights; with w > 0 the loss changes."""
    data, hard = stores["data"], synthetic_store(tmp_path / "h.h5", stores["data"], ood=False, per_image=2, seed=3)
    zero = add_mix_columns(synthetic_store(tmp_path / "z.h5", data, ood=False, per_image=2, seed=3), weights=(0.0,))
    soft = add_mix_columns(synthetic_store(tmp_path / "s.h5", data, ood=False, per_image=2, seed=3),
                           weights=(0.0, 0.3))  # labels stay the source class: only the targets differ
    s = BaselineSettings(**TINY, corruptions=False, label_smoothing=0.1)
    for name, store in (("hard", hard), ("zero", zero), ("soft", soft)):
        baseline(data, tmp_path / name, s, synthetic=[store])
    assert _rows(tmp_path / "hard") == _rows(tmp_path / "zero")
    assert _same_checkpoints(tmp_path / "hard", tmp_path / "zero")
    soft_rows = _rows(tmp_path / "soft")
    assert [r["loss"] for r in soft_rows] != [r["loss"] for r in _rows(tmp_path / "hard")]
    assert [r["soft_images_seen"] for r in soft_rows] == [18, 18]  # half of the 36 synthetic images, per epoch
    assert [r["images_seen"] for r in soft_rows] == [r["images_seen"] for r in _rows(tmp_path / "hard")]
    assert "synthetic_mixed" not in json.loads((tmp_path / "zero" / "run.json").read_text())["data_counts"]


def test_baseline_view_takes_the_variants_soft_labels(stores, mixed, tmp_path):
    s = BaselineSettings(**{**TINY, "epochs": 1}, corruptions=False, synthetic_policy="view",
                         synthetic_probability=1.0, steps=4)
    result = baseline(stores["data"], tmp_path / "run", s, synthetic=[mixed])
    assert result.optimizer_steps == 4 and result.images_seen == 48
    seen = result.metrics[0]["soft_images_seen"]
    assert 0 < seen < 48   # every real image replaced (p = 1), by a mixed variant or an unmixed one
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["synthetic"]["soft_labels"] == {"images": 27, "seen": seen}


@pytest.mark.parametrize("rule, left_out", [("dominant", 9), ("source", 0), ("drop", 27)])
def test_pretrain_rules_end_to_end_keep_the_budget(stores, mixed, tmp_path, rule, left_out):
    s = PretrainSettings(**{**TINY, "epochs": 1}, knn_k=5, mix_label=rule, steps=5)
    result = pretrain(stores["data"], tmp_path / rule, s, synthetic=[mixed])
    assert result.optimizer_steps == 5 and result.images_seen == 60   # left-out images count like any other
    info = json.loads((tmp_path / rule / "run.json").read_text())
    assert info["mix_label"]["rule"] == rule and info["mix_label"]["mixed"] == 27
    assert info["mix_label"]["left_out"] == left_out
    assert info["data_counts"]["synthetic_mixed"] == 27
    row = result.metrics[0]
    assert row["mixed_seen"] > 0 and (row["mixed_left_out_seen"] > 0) == (left_out > 0)


def test_pretrain_view_uses_only_variants_the_rule_keeps(stores, mixed, tmp_path):
    s = PretrainSettings(**{**TINY, "epochs": 1}, knn_k=5, synthetic_policy="view", synthetic_probability=1.0)
    for rule, used in (("dominant", False), ("source", True)):
        result = pretrain(stores["data"], tmp_path / rule, s.model_copy(update={"mix_label": rule}),
                          synthetic=[mixed])
        assert (result.metrics[0]["mixed_seen"] > 0) == used


@pytest.mark.parametrize("command", ["baseline", "pretrain"])
def test_resume_with_soft_labels_equals_uninterrupted(stores, mixed, tmp_path, command):
    run, s = (baseline, BaselineSettings(**TINY, corruptions=False)) if command == "baseline" else \
        (pretrain, PretrainSettings(**TINY, knn_k=5, mix_label="dominant", mix_threshold=0.6))
    full = run(stores["data"], tmp_path / "a", s, synthetic=[mixed])
    run(stores["data"], tmp_path / "b", s, synthetic=[mixed], stop_after=1)
    resumed = run(stores["data"], tmp_path / "b", s, synthetic=[mixed], resume=True)
    assert resumed.status == "complete" and full.best_epoch == resumed.best_epoch
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b") and _same_checkpoints(tmp_path / "a", tmp_path / "b")
    if command == "baseline":
        a, b = (json.loads((tmp_path / r / "metrics.json").read_text())["synthetic"] for r in "ab")
        assert a["soft_labels"] == b["soft_labels"] and a["soft_labels"]["seen"] == 54


# ------------------------------------------------------------------------------------------------------ CLI
def test_cli_runs_end_to_end(stores, mixed, run_dsc):
    common = ["--backbone", "timm:test_resnet", "--image-size", "16", "--batch-size", "12", "--epochs", "1"]
    res = run_dsc("baseline", stores["data"], "--synthetic", mixed, *common, "--no-corruptions", "-o", "ce")
    assert res.code == 0, res
    assert json.loads(Path("ce/metrics.json").read_text())["synthetic"]["soft_labels"]["images"] == 27
    assert "27 training images with a soft label" in " ".join(res.err.split())  # said before training
    res = run_dsc("pretrain", stores["data"], "--synthetic", mixed, *common, "--mix-label", "dominant",
                  "--mix-threshold", "0.6", "-o", "sc")
    assert res.code == 0, res
    info = json.loads(Path("sc/run.json").read_text())
    assert info["mix_label"] == {"rule": "dominant", "threshold": 0.6, "mixed": 27, "as_source": 0,
                                 "as_other": 18, "left_out": 9}
    assert ("27 mixed images labelled by --mix-label dominant: 0 as their source class, 18 as the partner class, "
            "9 left out") in " ".join(res.err.split())


@pytest.mark.parametrize("args, words", [
    (["--mix-threshold", "0.3"], "mix_threshold"), (["--mix-threshold", "1.5"], "mix_threshold"),
    (["--mix-label", "soft"], "mix_label")])
def test_cli_bad_values_are_one_line_errors(stores, mixed, run_dsc, args, words):
    res = run_dsc("pretrain", stores["data"], "--synthetic", mixed, "--backbone", "timm:test_resnet", *args,
                  "-o", "bad")
    assert res.code != 0 and words in res.err.replace("-", "_") and "Traceback" not in res.err, res
    assert not Path("bad").exists()


def test_cli_mix_settings_without_synthetic_warn(stores, run_dsc):
    res = run_dsc("pretrain", stores["data"], "--backbone", "timm:test_resnet", "--image-size", "16",
                  "--batch-size", "12", "--epochs", "1", "--mix-label", "drop", "-o", "run")
    assert res.code == 0 and "--mix-label drop (from the command line) has no effect without --synthetic" in res.err


def test_view_policy_warns_that_source_free_images_go_unused(stores, tmp_path, caplog):
    """Text-to-image rows (source_index -1) have no real image to stand in for: `view` says it skips them."""
    import logging

    import h5py

    from dsc.data.stores import open_inputs
    from dsc.settings import BaselineSettings
    from dsc.train.common import load_data

    with h5py.File(stores["synthetic"], "r+") as h5:
        idx = h5["samples/source_index"][...]
        idx[:3] = -1
        h5["samples/source_index"][...] = idx
    inputs = open_inputs(stores["data"], [stores["synthetic"]], [])
    with caplog.at_level(logging.WARNING):
        load_data(inputs, BaselineSettings(synthetic_policy="view", image_size=32), use_negatives=False)
    assert "3 synthetic images have no source image" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_data(inputs, BaselineSettings(synthetic_policy="extra", image_size=32), use_negatives=False)
    assert "no source image" not in caplog.text


def test_probe_with_synthetic_fits_the_soft_targets(stores, mixed, tmp_path, run_dsc, monkeypatch):
    """`dsc probe --with-synthetic` fits a mixed image to (1 - w) y_i + w y_j, as the CE baseline trains; the
    real and unmixed rows keep their one-hot targets, and metrics.json counts the soft rows."""
    from dsc.evaluate import linear, probe

    pretrain(stores["data"], tmp_path / "sc", PretrainSettings(**{**TINY, "epochs": 1}), synthetic=[mixed])
    seen = {}
    real_fit = linear.fit_linear

    def spy(x, y, *a, **k):
        seen["y"] = torch.as_tensor(y)
        return real_fit(x, y, *a, **k)

    monkeypatch.setattr(probe, "fit_linear", spy)
    res = run_dsc("probe", tmp_path / "sc", "--with-synthetic", "--epochs", "2", "--no-corruptions")
    assert res.code == 0, res
    y = seen["y"]
    syn = open_store(mixed)
    w, src, other = syn.mix_weight, syn.column("source_label"), syn.column("other_label")
    n_real = len(y) - len(syn)
    assert y.shape == (len(y), 3) and torch.allclose(y.sum(1), torch.ones(len(y)))
    assert (y[:n_real].max(1).values == 1).all()    # real images: one-hot
    for r in range(len(syn)):
        row = y[n_real + r]
        if w[r] > 0:
            assert row[src[r]] == pytest.approx(1 - w[r]) and row[other[r]] == pytest.approx(w[r])
        else:
            assert row[src[r]] == 1
    metrics = json.loads((tmp_path / "sc" / "probe" / "metrics.json").read_text())
    assert metrics["synthetic"]["probe_soft_labels"] == {"images": int((w > 0).sum())}
