"""Hand-made run directories with known numbers (docs/run-format.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

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


def _images(rng, n: int, colour: int, size: int = 32):
    """Noisy images dominated by one colour channel (classes are easy to tell apart)."""
    import numpy as np

    x = rng.integers(0, 80, size=(n, size, size, 3)).astype(np.int64)
    x[..., colour] += 150
    return np.clip(x, 0, 255).astype(np.uint8)


def write_stores(root: Path, *, near_copies: int = 2, ood_in_dist: int = 3) -> tuple[Path, Path]:
    """DATA.h5 (3 classes, 12 train + 4 val + 4 test each) and AUG.h5 from it: 6 normal images per class
    (``near_copies`` of class 0 are exact copies of real train images) and 4 OOD images per class (grey
    noise, except ``ood_in_dist`` of class 1 that look like class 1)."""
    import numpy as np

    from dsc.store import StoreWriter

    rng = np.random.default_rng(0)
    data_path, aug_path = root / "data.h5", root / "aug.h5"
    images, labels, split = [], [], []
    for c in range(3):
        for s, k in (("train", 12), ("val", 4), ("test", 4)):
            images.append(_images(rng, k, c))
            labels += [c] * k
            split += [s] * k
    images = np.concatenate(images)
    with StoreWriter(data_path, kind="data") as w:
        w.set_classes(CLASSES)
        w.create_column("images", (32, 32, 3), np.uint8)
        w.create_column("labels", (), np.int64)
        w.create_column("split", (), str)
        w.append(images=images, labels=np.array(labels), split=np.array(split, dtype=object))
        w.finalize()
    from dsc.store import open_store

    fp = open_store(data_path).fingerprint
    train_rows = [i for i, s in enumerate(split) if s == "train"]
    syn, lab, ood, src, idx = [], [], [], [], []
    for c in range(3):
        rows = [i for i in train_rows if labels[i] == c]
        normal = _images(rng, 6, c)
        if c == 0:
            normal[:near_copies] = images[rows[:near_copies]]
        noise = rng.integers(60, 140, size=(4, 32, 32, 3)).astype(np.uint8)
        if c == 1:
            noise[:ood_in_dist] = _images(rng, ood_in_dist, 1)
        for im_set, is_ood in ((normal, False), (noise, True)):
            syn.append(im_set)
            lab += [-1 if is_ood else c] * len(im_set)
            ood += [is_ood] * len(im_set)
            src += [c] * len(im_set)
            idx += rows[:len(im_set)]
    with StoreWriter(aug_path, kind="synthetic", attrs={"inputs": {"data_fingerprint": fp}}) as w:
        w.set_classes(CLASSES)
        w.create_column("images", (32, 32, 3), np.uint8)
        for col, dt in (("labels", np.int64), ("is_ood", bool), ("source_label", np.int64),
                        ("source_index", np.int64)):
            w.create_column(col, (), dt)
        w.append(images=np.concatenate(syn), labels=np.array(lab), is_ood=np.array(ood),
                 source_label=np.array(src), source_index=np.array(idx))
        w.finalize()
    return data_path, aug_path


@pytest.fixture
def stores(tmp_path: Path) -> tuple[Path, Path]:
    return write_stores(tmp_path)


def fake_synthetic(data_path: Path, out: Path, *, mode: str = "normal", per_image: int = 1, seed: int = 0) -> Path:
    """A synthetic store made from DATA.h5's train images the way `dsc augment` lays it out: normal images
    are the source images plus noise; OOD images are pixel-shuffled sources (is_ood, label -1)."""
    import numpy as np

    from dsc.store import StoreWriter, open_store

    rng = np.random.default_rng(seed)
    data = open_store(data_path, kind="data")
    rows = data.indices("train")
    rows = rows[data.labels[rows] >= 0]
    src = np.repeat(rows, per_image)
    images = data.images(src).astype(np.int16)
    if mode == "normal":
        images = np.clip(images + rng.integers(-20, 21, images.shape), 0, 255)
    else:
        flat = images.reshape(len(images), -1, 3)
        images = flat[:, rng.permutation(flat.shape[1])].reshape(images.shape)
    ood = mode != "normal"
    with StoreWriter(out, kind="synthetic", force=True, attrs={"inputs": {"data_fingerprint": data.fingerprint},
                                                   "settings": {"mode": mode}}) as w:
        w.set_classes(list(data.classes))
        w.create_column("images", data.image_shape, np.uint8)
        for col, dt in (("labels", np.int64), ("is_ood", bool), ("source_label", np.int64),
                        ("source_index", np.int64), ("variant", np.int64)):
            w.create_column(col, (), dt)
        w.append(images=images.astype(np.uint8), labels=np.full(len(src), -1) if ood else data.labels[src],
                 is_ood=np.full(len(src), ood), source_label=data.labels[src], source_index=src,
                 variant=np.tile(np.arange(per_image), len(rows)))
        w.finalize()
    return out
