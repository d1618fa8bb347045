"""A study shaped like the demo's (`just demo`): CE and SupCon+probe, each with none / normal / normal+ood
synthetic data, 2 seeds, 6 classes with held-out-class OOD, synthetic OOD and corruption metrics, stores
named in run.json; plus a second CE baseline on another backbone, so two names carry a bracket part
(``ce/none[timm:test_resnet]``) that no renderer may read as markup."""

from __future__ import annotations

import json
from pathlib import Path

from tests.report.conftest import write_run

CLASSES = ["hex nut", "wing nut", "spur gear", "bevel gear", "washer", "bolt <M6> & \"long\""]
ARMS = ("none", "normal", "normal+ood")


def _extra(top1: float, seed: int) -> dict:
    k = len(CLASSES)
    confusion = [[12 if i == j else (2 if j == (i + 1) % k else 0) for j in range(k)] for i in range(k)]
    return {
        "classes": CLASSES, "val": {"top1": top1 - 0.01, "n": 48},
        "test": {"top1": top1, "top5": 0.97, "macro_f1": top1 - 0.02, "ece": 0.08 + 0.01 * seed, "n": 72,
                 "per_class": {c: round(top1 + 0.02 * (i - 2), 3) for i, c in enumerate(CLASSES)},
                 "confusion": confusion},
        "robustness": {"clean_top1": top1, "mean_corruption_top1": top1 - 0.15,
                       "per_corruption": {"gaussian_noise": {"1": top1 - 0.1, "2": top1 - 0.2}}},
        "ood": {"holdout": {"msp": {"auroc": 0.61 + 0.01 * seed, "fpr95": 0.83}},
                "synthetic": {"msp": {"auroc": 0.70 + 0.02 * seed, "fpr95": 0.74}}},
        "ood_stores": [{"path": "demo-out/aug-ood-test.h5", "fingerprint": "fp-ood-test", "n": 24}],
    }


def demo_like_study(root: Path) -> Path:
    """Write the runs under ``root`` and return it."""
    top1 = {("ce", "none"): 0.208, ("ce", "normal"): 0.236, ("ce", "normal+ood"): 0.222,
            ("supcon+probe", "none"): 0.25, ("supcon+probe", "normal"): 0.264, ("supcon+probe", "normal+ood"): 0.243}
    for i, ((method, arm), t) in enumerate(top1.items()):
        for seed in (0, 1):
            name = f"{'ce' if method == 'ce' else 'supcon'}-{arm.replace('+', '-')}-s{seed}"
            value = round(t + (0.01 + 0.007 * i) * seed, 4)   # seeds differ by a different amount per arm
            run = write_run(root, name, method=method, seed=seed, top1=value, label=arm,
                            extra=_extra(value, seed), history=15)
            info = json.loads((run / "run.json").read_text())
            if "normal" in arm:
                info["inputs"]["synthetic"] = [{"path": "demo-out/aug-normal.h5", "fingerprint": "fp-n"}]
            if "ood" in arm:
                info["inputs"]["negatives"] = [{"path": "demo-out/aug-ood.h5", "fingerprint": "fp-o"}]
            (run / "run.json").write_text(json.dumps(info))
    for seed in (0, 1):   # the same configuration on another backbone: both names get a [backbone] part
        extra = _extra(0.19, seed) | {"backbone": "timm:test_resnet"}
        write_run(root, f"ce-none-small-s{seed}", method="ce", seed=seed, top1=0.19, extra=extra, history=15)
    return root
