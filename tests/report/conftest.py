"""Hand-made run directories with known numbers (docs/run-format.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dsc.testing import report_stores

CLASSES = ["gear", "bolt", "nut"]


def write_run(root: Path, name: str, *, method: str = "ce", seed: int = 0, top1: float = 0.5,
              label: str = "none", fingerprint: str = "fp-data", extra: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None, history: int = 3, per_class: dict | None = None,
              confusion: list | None = None) -> Path:
    """A complete run: run.json, metrics.jsonl and metrics.json (baseline) or probe/metrics.json."""
    run = root / name
    run.mkdir(parents=True)
    kind = "baseline" if method == "ce" else "pretrain"
    st = {"epochs": 3, "lr": 0.1, "seed": seed, "workers": 0, **(settings or {})}
    (run / "run.json").write_text(json.dumps({
        "command": f"dsc {kind}", "status": "complete", "seed": seed, "settings": {kind: st},
        "inputs": {"data": {"path": "data.h5", "fingerprint": fingerprint}},
        "timings": {kind: 10.0 + seed}}))
    val_key = "val_top1" if method == "ce" else "val_knn_top1"
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e, "loss": 2.0 / (e + 1), "lr": 0.1, val_key: 0.3 + 0.1 * e}) + "\n"
        for e in range(history)))
    syn = {"normal": ["fp-n"] if "normal" in label else [], "ood": ["fp-o"] if "ood" in label else [],
           "policy": "extra" if "normal" in label else None,
           "ood_policy": ("negatives" if method != "ce" else "outlier-exposure") if "ood" in label else None,
           "label": label}
    metrics = {
        "schema": "dsc-metrics/1", "method": method, "run": name, "seed": seed, "backbone": "timm:resnet18",
        "data": {"path": "data.h5", "fingerprint": fingerprint}, "synthetic": syn, "classes": CLASSES,
        "val": {"top1": top1, "n": 30},
        "test": {"top1": top1, "top5": 1.0, "macro_f1": top1 - 0.05, "ece": 0.1, "n": 30,
                 "per_class": per_class or {c: top1 for c in CLASSES},
                 "confusion": confusion or [[8, 2, 0], [1, 9, 0], [0, 3, 7]]},
        "timings": {"evaluate": 1.0}, "selected_epoch": 2, "created": "2026-01-01T00:00:00+00:00",
    }
    if extra:
        metrics.update(extra)
    target = run / "metrics.json" if method == "ce" else run / "probe" / "metrics.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(metrics))
    return run


@pytest.fixture
def make_run():
    return write_run


#: Known per-seed top-1 values used across tests.
BASE = {0: 0.60, 1: 0.62, 2: 0.58, 3: 0.65}
NORMAL = {0: 0.66, 1: 0.65, 2: 0.64, 3: 0.70}
OOD = {0: 0.61, 1: 0.60, 2: 0.63, 3: 0.64}


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """Three configurations x four seeds: ce/none, supcon+probe/normal, supcon+probe/normal+ood."""
    root = tmp_path / "runs"
    for s in BASE:
        write_run(root, f"ce-none-s{s}", method="ce", seed=s, top1=BASE[s])
        write_run(root / "supcon", f"sc-normal-s{s}", method="supcon+probe", seed=s, top1=NORMAL[s],
                  label="normal")
        write_run(root / "supcon", f"sc-ood-s{s}", method="supcon+probe", seed=s, top1=OOD[s],
                  label="normal+ood")
    return root


@pytest.fixture
def stores(tmp_path: Path) -> tuple[Path, Path]:
    return report_stores(tmp_path)
