"""benchmarks/bench_learning.py: its reference SupCon loss is the paper's formula (and agrees with dsc's), the
identical-embedding value is ln(2N-1), its measurement helpers are right, and the script's quick path runs end
to end on a tiny store and writes the JSON fields the lead and run_all.py read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.benchmarks import load_script

bl = load_script("bench_learning")


def _brute_force_supcon(z: torch.Tensor, labels: torch.Tensor, t: float) -> float:
    """Eq. 2 of Khosla et al. (L_out), one anchor at a time."""
    n, v, _ = z.shape
    f = [z[i, j] for j in range(v) for i in range(n)]
    y = [int(labels[i]) for _ in range(v) for i in range(n)]
    total = 0.0
    for i in range(len(f)):
        denom = sum(math.exp(float(f[i] @ f[a]) / t) for a in range(len(f)) if a != i)
        pos = [p for p in range(len(f)) if p != i and y[p] == y[i]]
        total += -sum(float(f[i] @ f[p]) / t - math.log(denom) for p in pos) / len(pos)
    return total / len(f)


def test_reference_loss_is_the_papers_formula_and_agrees_with_dsc() -> None:
    from dsc.losses import SupConLoss

    gen = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(6, 2, 8, generator=gen), dim=2)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    ours = float(bl.supcon_loss(z, labels, 0.1))
    assert ours == pytest.approx(_brute_force_supcon(z, labels, 0.1), rel=1e-5)
    assert ours == pytest.approx(float(SupConLoss(temperature=0.1)(z, labels=labels)), rel=1e-5)
    z.requires_grad_(True)
    bl.supcon_loss(z, labels, 0.1).backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_identical_embedding_loss_is_log_2n_minus_1() -> None:
    for n in (2, 7, 32):
        labels = torch.arange(n) % 3
        assert bl.identical_loss(labels, 0.1) == pytest.approx(math.log(2 * n - 1), rel=1e-5)
        assert bl.identical_loss(labels, 0.5) == pytest.approx(math.log(2 * n - 1), rel=1e-5)


def test_loss_stats_finds_the_first_step_well_below_the_collapse_value() -> None:
    ident = [4.0] * 300
    loss = [4.0] * 50 + [2.0] * 250  # the 10-step mean falls under 0.9 * 4 once 3 of the last 10 steps are at 2
    stats = bl.loss_stats(loss, ident)
    assert stats["first_step_below"] == 53
    assert stats["final_ratio"] == 0.5 and stats["ratio_at_200"] == 0.5
    assert bl.loss_stats([4.1] * 20, [4.0] * 20)["first_step_below"] is None


def test_full_batches_are_full_permutations() -> None:
    b = bl.FullBatches(10, 4, seed=0)
    rows = torch.cat([b.next() for _ in range(5)])  # 20 rows = two passes
    assert all(len(b.next()) == 4 for _ in range(3))
    assert sorted(rows[:10].tolist()) == list(range(10)) and sorted(rows[10:].tolist()) == list(range(10))
    assert len(bl.FullBatches(3, 64, seed=0).next()) == 3
    assert bl.round_ends(10, 3) == {3, 6, 10}


def test_knn_and_projection_cosines() -> None:
    bank = torch.tensor([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])
    y = torch.tensor([0, 0, 1, 1])
    assert bl.knn_top1(bank, y, torch.tensor([[1.0, 0.05], [0.0, 1.0]]), torch.tensor([0, 1]), k=2) == 1.0
    images = torch.randint(0, 255, (6, 4, 4, 3), dtype=torch.uint8)
    collapsed = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    with torch.no_grad():
        collapsed[1].weight.zero_()
        collapsed[1].bias.fill_(1.0)
    cos = bl.projection_cosines(collapsed, images, [0.5] * 3, [0.25] * 3, torch.device("cpu"), 4)
    assert cos == {"proj_cos_mean": 1.0, "proj_cos_min": 1.0}
    spread = bl.projection_cosines(nn.Flatten(), images, [0.5] * 3, [0.25] * 3, torch.device("cpu"), 4)
    assert spread["proj_cos_mean"] < 0.5 and spread["proj_cos_min"] < spread["proj_cos_mean"]


def test_reference_encoder_starts_from_dscs_weights() -> None:
    from dsc.settings import PretrainSettings
    from dsc.train.common import build_backbone

    args = bl.parse_args(["--quick", "--backbone", "timm:test_resnet", "--size", "32"])
    ours, dim = bl.build_encoder(args, seed=3)
    theirs = build_backbone(PretrainSettings(backbone="timm:test_resnet", image_size=32, seed=3), seed=3)
    assert dim == theirs.feature_dim and ours.stem == theirs.stem
    a, b = ours.module.state_dict(), theirs.module.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other, _ = bl.build_encoder(args, seed=4)
    assert not all(torch.equal(a[k], v) for k, v in other.module.state_dict().items())
    assert [type(t).__name__ for t in bl.torchvision_transform("supcon", 32, [0.5] * 3, [0.5] * 3).transforms] == [
        "RandomResizedCrop", "RandomHorizontalFlip", "RandomApply", "RandomGrayscale", "ToTensor", "Normalize"]


def test_summaries_verdict_and_failed_runs() -> None:
    from dsc.train.common import DivergedError

    def diverges(*_args: object) -> dict:
        raise DivergedError("the loss became nan")

    failed = bl.guarded(diverges, 2)
    assert failed == {"seed": 2, "error": "DivergedError: the loss became nan"}
    ours = bl.summarise([{"seed": 0, "probe_top1": 0.5}, {"seed": 1, "probe_top1": 0.7}, failed])
    assert ours["seeds"] == [0, 1] and ours["failed_seeds"] == [2]
    assert ours["probe_top1"] == {"mean": 0.6, "std": pytest.approx(0.141421, abs=1e-5)}
    ref = {"probe_top1": {"mean": 0.65, "std": 0.06}}
    assert bl.verdict(ours, ref, "probe_top1")["pass"] is True       # 0.60 >= 0.65 - 0.06
    ref = {"probe_top1": {"mean": 0.65, "std": 0.04}}
    assert bl.verdict(ours, ref, "probe_top1")["pass"] is False      # 0.60 < 0.65 - 0.04
    assert bl.verdict({}, ref, "probe_top1")["pass"] is None


def test_linear_probe_learns_separable_features() -> None:
    gen = torch.Generator().manual_seed(1)
    centres = torch.randn(3, 16, generator=gen) * 4

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % 3
        return centres[y] + torch.randn(n, 16, generator=gen), y

    res = bl.linear_probe(split(60), split(30), split(30), n_classes=3, seed=0, epochs=20)
    assert res["probe_top1"] > 0.9 and res["probe_val_top1"] > 0.9


def test_quick_path_end_to_end(tmp_path: Path) -> None:
    """The script on a tiny toyparts store (test_resnet, 32 px, a few steps), both SupCon arms and both CE arms."""
    from dsc.train.baseline import BaselineTask
    from dsc.train.pretrain import PretrainTask

    before = (PretrainTask.compute, BaselineTask.compute)
    path = tmp_path / "learning.json"
    res = bl.main(["--quick", "--backbone", "timm:test_resnet", "--size", "32", "--steps", "4", "--rounds", "2",
                   "--objects", "6", "--probe-epochs", "3", "--ce", "--json", str(path),
                   "--curves", str(tmp_path / "c.png"), "--work", str(tmp_path / "work")])
    assert (PretrainTask.compute, BaselineTask.compute) == before  # the recording wrapper is removed
    data = json.loads(path.read_text())
    assert res["datasets"].keys() == data["datasets"].keys()
    assert data["settings"]["steps"] == 4 and data["settings"]["seeds"] == [0]
    assert data["settings"]["augmentation_resolved"] == "light"  # dsc's auto at 32 px, made with torchvision
    (name, ds), = data["datasets"].items()
    assert name.startswith("toyparts5_6obj") and ds["data"]["classes"] == 5
    sup = ds["supcon"]
    for arm in ("dsc", "reference"):
        run = sup[arm]["runs"][0]
        assert ds["data"]["train"] == 60 and run["steps"] == 4 and run["images"] == 4 * 32
        assert len(run["curves"]["loss"]) == len(run["curves"]["identical"]) == 4
        assert [s for s, _ in run["curves"]["val_knn"]] == [2, 4]
        assert run["final_identical"] == pytest.approx(math.log(2 * 32 - 1), rel=1e-4)
        assert 0 <= run["probe_top1"] <= 1 and -1 <= run["proj_cos_min"] <= run["proj_cos_mean"] <= 1
        assert set(sup[arm]["summary"]["probe_top1"]) == {"mean", "std"}
    assert 0 <= sup["dsc"]["runs"][0]["dsc_probe_top1"] <= 1
    assert sup["dsc"]["runs"][0]["stem"] == sup["reference"]["runs"][0]["stem"]
    assert sup["verdict"]["metric"] == "probe_top1" and isinstance(sup["verdict"]["pass"], bool)
    ce = ds["ce"]
    for arm in ("dsc", "torchvision"):
        run = ce[arm]["runs"][0]
        assert run["steps"] == 4 and len(run["curves"]["loss"]) == 4
        assert all(0 <= run[k] <= 1 for k in ("test_top1", "val_top1", "train_acc", "train_acc_last"))
    dsc_ce = ce["dsc"]["runs"][0]
    assert dsc_ce["test_top1_here"] == pytest.approx(dsc_ce["test_top1"], abs=1e-6)  # same weights, same data
    assert (tmp_path / "c.png").stat().st_size > 0
    rows = load_script("run_all").normalise("learning", data)
    assert [r["unit"] for r in rows] == ["% top-1", "% top-1"] and rows[0]["benchmark"] == "learning"
