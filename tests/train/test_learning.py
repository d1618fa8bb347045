"""Training dynamics on small procedural data: SupCon and CE must learn, and a collapse must be seen.

These train 150 steps on toyparts at 32 px with ``timm:resnet18`` (ImageNet stem), so a regression in
the loss, the head, the views or the schedule fails CI instead of silently printing chance-level reports.
Runs are deterministic on the CPU; the thresholds leave room above chance, not above today's figures.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CLASSES = 4
CHANCE = 1 / CLASSES
TRAIN = ["--backbone", "timm:resnet18", "--image-size", "32", "--batch-size", "32", "--steps", "150",
         "--epochs", "3", "--seed", "0"]
#: The collapse sets in within the first few dozen steps; 60 show it at well under half the suite time.
COLLAPSE = [*TRAIN[:TRAIN.index("--steps") + 1], "60", *TRAIN[TRAIN.index("--steps") + 2:]]


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dsc.settings import SubsetSettings
    from dsc.subset import build_subset

    path = tmp_path_factory.mktemp("learning") / "data.h5"
    settings = SubsetSettings(dataset="toyparts", classes=CLASSES, seed=0, resolution=32, crop_to_object=True,
                              mask_dilation=4, options={"objects_per_class": 20})
    build_subset(settings, path)
    return path


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_supcon_with_the_defaults_learns_and_does_not_collapse(run_dsc, toy_store, tmp_path):
    out = tmp_path / "supcon"
    res = run_dsc("pretrain", toy_store, *TRAIN, "-o", out)
    assert res.code == 0, res
    rows = _rows(out)
    last = rows[-1]
    # the loss of identical projections is the collapse value; a learning run goes well below it
    assert last["loss"] < 0.9 * last["loss_collapsed"], rows
    assert last["proj_cos"] < 0.9, rows  # projections of different images are not one point
    assert max(r["val_knn_top1"] for r in rows) >= CHANCE + 0.1, rows
    info = json.loads((out / "run.json").read_text())
    assert info["augmentation"] == "light" and info["settings"]["head"] == "mlp-bn"  # the defaults at 32 px


def test_strong_crops_with_supcontrast_head_collapse_and_the_run_says_so(run_dsc, toy_store, tmp_path, caplog):
    """The recipe that used to be the default (SupContrast's head and views): the run records the collapse
    and warns at its end."""
    out = tmp_path / "collapsed"
    with caplog.at_level(logging.WARNING):
        res = run_dsc("pretrain", toy_store, *COLLAPSE, "--head", "mlp", "--augmentation", "supcon", "-o", out)
    assert res.code == 0, res
    rows = _rows(out)
    assert rows[-1]["proj_cos"] > 0.95, rows
    assert rows[-1]["loss"] > 0.97 * rows[-1]["loss_collapsed"], rows
    assert "projections collapsed to one point" in caplog.text + res.err


def test_ce_baseline_learns(run_dsc, toy_store, tmp_path):
    out = tmp_path / "ce"
    res = run_dsc("baseline", toy_store, *TRAIN, "--no-corruptions", "-o", out)
    assert res.code == 0, res
    rows = _rows(out)
    assert rows[-1]["loss"] < 0.5 * rows[0]["loss"], rows
    assert max(r["val_top1"] for r in rows) >= 0.5, rows
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["top1"] >= CHANCE + 0.1, metrics["test"]
