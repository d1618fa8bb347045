"""The training budget (epochs, optimizer steps or images seen), its evaluation rounds and exact resume."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from dsc.data.samplers import BatchPlan
from dsc.errors import ConfigError
from dsc.settings import BaselineSettings, PretrainSettings, resolve_settings
from dsc.train.baseline import baseline
from dsc.train.budget import BatchStream, FullBatchStream, make_budget, pass_sizes, steps_for_images
from dsc.train.common import lr_at
from dsc.train.pretrain import pretrain

TINY = dict(backbone="timm:test_resnet", image_size=16, batch_size=8, epochs=1, lr=0.05, knn_k=5)


def _rows(run) -> list[dict]:
    drop = ("time_s", "images_per_s", "data_wait_share")
    return [{k: v for k, v in r.items() if k not in drop}
            for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def _same_checkpoint(a, b, name: str = "last") -> bool:
    x = load_file(str(a / "checkpoints" / f"{name}.safetensors"))
    y = load_file(str(b / "checkpoints" / f"{name}.safetensors"))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.mark.parametrize("n_pos, n_neg, batch, world", [
    (24, 0, 8, 1), (25, 0, 8, 1), (24, 0, 23, 1), (18, 18, 12, 1), (17, 5, 6, 2), (3, 0, 8, 1), (40, 7, 9, 3)])
def test_pass_sizes_match_the_batches_of_an_epoch(n_pos, n_neg, batch, world):
    plan = BatchPlan(torch.arange(n_pos) % 3, n_neg, batch)
    got = [len(b) // world * world for b in plan.epoch(torch.Generator().manual_seed(0))]
    assert pass_sizes(plan, world) == got


def test_batch_stream_cuts_passes_anywhere_and_restores_mid_pass():
    plan = BatchPlan(torch.arange(18) % 3, 9, 8)           # 5 positives + 3 negatives a batch, 4 batches a pass
    whole = []
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        whole += plan.epoch(g)
    stream = BatchStream(plan, torch.Generator().manual_seed(3))
    got = stream.take(2) + stream.take(5)                   # cuts in the middle of the first and second pass
    tensors, numbers = stream.state()
    assert numbers == {"pass_offset": 3}
    rest = stream.take(5)
    assert all(torch.equal(a, b) for a, b in zip(got + rest, whole, strict=True))
    again = BatchStream(plan, torch.Generator().manual_seed(99))
    again.restore(tensors, numbers)
    assert all(torch.equal(a, b) for a, b in zip(again.take(5), rest, strict=True))


@pytest.mark.parametrize("balanced", [False, True])
def test_full_batch_stream_keeps_every_batch_full_and_restores(balanced):
    labels = torch.tensor([0] * 12 + [1] * 4 + [2] * 2)
    plan = BatchPlan(labels, 9, 8, balanced=balanced)       # 5 positives + 3 negatives a batch
    stream = FullBatchStream(plan, torch.Generator().manual_seed(1))
    first = stream.take(3)
    tensors, numbers = stream.state()
    rest = stream.take(6)
    batches = first + rest
    assert {len(b) for b in batches} == {8}
    pos = torch.cat([b[:5] for b in batches])               # 45 positives: 2.5 passes, cut into full batches
    assert all(bool((b[:5] < 18).all()) and bool((b[5:] >= 18).all()) for b in batches)
    if not balanced:                                        # each pass is a permutation of the 18 positives
        assert all(sorted(pos[i:i + 18].tolist()) == list(range(18)) for i in (0, 18))
        negs = torch.cat([b[5:] for b in batches])
        assert all(sorted(negs[i:i + 9].tolist()) == list(range(18, 27)) for i in (0, 9, 18))
    else:
        assert torch.bincount(labels[pos], minlength=3).min() >= 8      # classes drawn about equally
    again = FullBatchStream(plan, torch.Generator().manual_seed(99))
    again.restore(tensors, numbers)
    assert all(torch.equal(a, b) for a, b in zip(again.take(6), rest, strict=True))
    tiny = FullBatchStream(BatchPlan(torch.arange(3), 0, 8), torch.Generator().manual_seed(0))
    assert [sorted(b.tolist()) for b in tiny.take(2)] == [[0, 1, 2]] * 2   # no more positives than there are


def test_budget_rounds_warmup_and_images():
    plan = BatchPlan(torch.arange(18) % 3, 0, 8)            # passes of 8, 8, 2 images
    s = PretrainSettings(**{**TINY, "epochs": 3, "warmup_epochs": 1})
    b = make_budget(s, plan)
    assert (b.kind, b.total_steps, b.round_ends, b.warmup_steps) == ("epochs", 9, (3, 6, 9), 3)
    assert b.images_for(9) == 3 * 18 and b.passes_for(9) == 3
    b = make_budget(s.model_copy(update={"steps": 10}), plan)              # full batches of 8
    assert (b.kind, b.total_steps, b.round_ends, b.warmup_steps) == ("steps", 10, (3, 6, 10), 3)
    assert b.images_for(10) == 80 and b.passes_for(9) == 4 and b.steps_per_pass == 3
    assert steps_for_images([8, 8, 2], 19) == 4 and steps_for_images([8, 8, 2], 36) == 6
    assert steps_for_images([8, 8, 2], 37) == 7
    b = make_budget(s.model_copy(update={"images": 41}), plan)
    assert b.kind == "images" and b.total_steps == 6 and b.images_for(b.total_steps) == 48
    with pytest.raises(ConfigError, match="fewer than the 3 evaluation rounds"):
        make_budget(s.model_copy(update={"steps": 2}), plan)


def test_one_budget_only():
    with pytest.raises(ConfigError, match="one training budget"):
        resolve_settings({"pretrain": {"steps": 10, "images": 100}})
    assert resolve_settings({"baseline": {"images": 100}}).settings.baseline.budget == "images"
    assert resolve_settings({}).settings.pretrain.budget == "epochs"


def test_epochs_schedule_counts_the_batches_really_made(tmp_path):
    """24 train images in batches of 23: the last batch (1 image) is dropped, so a pass is 1 step. The
    cosine must run over the steps the run takes (it used to plan 2 per pass and stop half-way)."""
    from dsc.testing import pattern_store

    data = pattern_store(tmp_path / "d.h5")
    s = PretrainSettings(**{**TINY, "batch_size": 23, "epochs": 4})
    pretrain(data, tmp_path / "run", s)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    rows = _rows(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert info["batch"]["steps_per_epoch"] == 1 and info["budget"]["total_steps"] == 4
    assert rows[-1]["lr"] == pytest.approx(lr_at(3, 4, 0, 0.05))
    assert (info["optimizer_steps"], info["images_seen"]) == (4, 4 * 23)


def test_a_step_budget_aligned_with_passes_trains_like_the_epoch_budget(stores, tmp_path):
    """18 positives and 18 negatives in batches of 6 + 6: passes of 3 full batches, so the full-batch
    stream of a steps budget draws exactly what the epochs budget draws."""
    s = PretrainSettings(**{**TINY, "batch_size": 12, "epochs": 2, "warmup_epochs": 1})
    pretrain(stores["data"], tmp_path / "e", s, negatives=[stores["ood"]])
    steps = json.loads((tmp_path / "e" / "run.json").read_text())["budget"]["total_steps"]
    pretrain(stores["data"], tmp_path / "s", s.model_copy(update={"steps": steps}), negatives=[stores["ood"]])
    assert _rows(tmp_path / "e") == _rows(tmp_path / "s")
    assert _same_checkpoint(tmp_path / "e", tmp_path / "s")


def test_step_budget_rounds_cut_passes_and_resume_is_exact(stores, tmp_path):
    """7 steps in 3 rounds (ends at steps 2, 4, 7) of full batches of 4 positives + 4 negatives: 18
    positives make 4.5 batches, so rounds end inside passes and batches span two passes."""
    s = PretrainSettings(**{**TINY, "epochs": 3, "steps": 7})
    full = pretrain(stores["data"], tmp_path / "a", s, negatives=[stores["ood"]])
    rows = _rows(tmp_path / "a")
    assert [r["step"] for r in rows] == [2, 4, 7] and full.optimizer_steps == 7
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    assert {k: info["budget"][k] for k in ("kind", "total_steps", "rounds", "steps_per_epoch")} == \
        {"kind": "steps", "total_steps": 7, "rounds": 3, "steps_per_epoch": 5}
    assert info["optimizer_steps"] == 7 and info["images_seen"] == rows[-1]["images_seen"] == 7 * 8
    assert info["passes"] == pytest.approx(7 * 4 / 18, abs=1e-3) and info["budget"]["full_batches"]
    for stop in (1, 2):
        run = tmp_path / f"c{stop}"
        part = pretrain(stores["data"], run, s, negatives=[stores["ood"]], stop_after=stop)
        assert part.status == "stopped" and json.loads((run / "run.json").read_text())["optimizer_steps"] == \
            rows[stop - 1]["step"]
        again = pretrain(stores["data"], run, s, negatives=[stores["ood"]], resume=True)
        assert again.status == "complete" and again.images_seen == full.images_seen
        assert _rows(run) == rows and _same_checkpoint(tmp_path / "a", run)


def test_baseline_image_budget(stores, tmp_path):
    s = BaselineSettings(**{**{k: v for k, v in TINY.items() if k != "knn_k"}, "epochs": 2, "images": 30,
                            "corruptions": False})
    result = baseline(stores["data"], tmp_path / "ce", s, synthetic=[stores["synthetic"]])
    info = json.loads((tmp_path / "ce" / "run.json").read_text())
    # 36 positives (18 real + 18 synthetic) in batches of 8: 30 images take 4 steps (32 images)
    assert (result.optimizer_steps, result.images_seen) == (4, 32)
    assert (info["optimizer_steps"], info["images_seen"], info["budget"]["kind"]) == (4, 32, "images")
    assert [r["step"] for r in _rows(tmp_path / "ce")] == [2, 4]


def test_cli_step_budget(stores, run_dsc):
    res = run_dsc("baseline", stores["data"], "--backbone", "timm:test_resnet", "--image-size", "16",
                  "--batch-size", "8", "--epochs", "2", "--steps", "5", "--no-corruptions", "-o", "run", "--json")
    assert res.code == 0, res
    doc = json.loads(res.out)
    assert doc["optimizer_steps"] == 5 and doc["images_seen"] > 0
    bad = run_dsc("pretrain", stores["data"], "--backbone", "timm:test_resnet", "--epochs", "4", "--steps", "3",
                  "-o", "run2")
    assert bad.code == 1 and "evaluation rounds" in bad.err and "Traceback" not in bad.err
