"""Tiny fabricated stores and runs for evaluation/probe tests (no downloads, a few KB each)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dsc.store import Store, StoreWriter

CLASSES = ["gear", "bolt", "nut"]


def class_images(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Images whose colour and stripe pattern depend on the label (so a probe can learn them)."""
    n = len(labels)
    imgs = rng.normal(0, 25, (n, size, size, 3))
    base = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40], [40, 200, 200]], float)
    yy = np.arange(size)[:, None]
    for i, lab in enumerate(labels):
        lab = int(lab) % len(base)
        imgs[i] += base[lab]
        imgs[i, (yy % (lab + 2) == 0)[:, 0]] += 40
    return np.clip(imgs, 0, 255).astype(np.uint8)


def make_data_store(path: Path, *, per_split=(8, 4, 4), size: int = 32, holdout: int = 0, seed: int = 0,
                    holdout_column: bool = True, test_seed: int | None = None) -> Store:
    """A data store with 3 classes; ``holdout`` extra test rows of held-out classes (label -1)."""
    rng = np.random.default_rng(seed)
    labels, split = [], []
    for name, n in zip(("train", "val", "test"), per_split, strict=True):
        for c in range(len(CLASSES)):
            labels += [c] * n
            split += [name] * n
    hold = [False] * len(labels)
    labels += [-1] * holdout
    split += ["test"] * holdout
    hold += [True] * holdout
    labels_arr = np.array(labels, dtype=np.int64)
    images = class_images(np.where(labels_arr < 0, 3 + np.arange(len(labels)) % 2, labels_arr), size, rng)
    if test_seed is not None:  # other test images, same train/val images
        test = np.array(split) == "test"
        images[test] = class_images(labels_arr[test] % 5, size, np.random.default_rng(test_seed))
    w = StoreWriter(path, kind="data", attrs={"settings": {"resolution": size}})
    w.set_classes(CLASSES)
    w.create_column("images", (size, size, 3), np.uint8, chunk_rows=1)
    w.create_column("labels", (), np.int64)
    w.create_column("split", (), str)
    if holdout_column:
        w.create_column("holdout", (), bool)
    cols = {"images": images, "labels": labels_arr, "split": split}
    if holdout_column:
        cols["holdout"] = np.array(hold)
    w.append(**cols)
    w.finalize()
    return Store(path)


def make_synthetic_store(path: Path, data: Store, *, n_per_class: int = 2, ood: bool = False,
                         evaluation_only: bool = False, size: int = 48, seed: int = 1) -> Store:
    """A synthetic store made "from" ``data`` (normal positives, or OOD rows with is_ood=True)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), n_per_class)
    images = class_images(labels + (3 if ood else 0), size, rng)
    w = StoreWriter(path, kind="synthetic", attrs={
        "inputs": {"data_fingerprint": data.fingerprint},
        "settings": {"mode": "ood" if ood else "normal", "split": "test" if evaluation_only else "train"},
        "evaluation_only": evaluation_only})
    w.set_classes(CLASSES)
    w.create_column("images", (size, size, 3), np.uint8, chunk_rows=1)
    w.create_column("labels", (), np.int64)
    w.create_column("is_ood", (), bool)
    w.create_column("source_index", (), np.int64)
    w.append(images=images, labels=labels, is_ood=np.full(len(labels), ood),
             source_index=np.arange(len(labels)))
    w.finalize()
    return Store(path)


def make_run(run_dir: Path, data: Store, *, model: str = "test_resnet", image_size: int = 32,
             synthetic: list[Store] = (), seed: int = 0) -> Path:
    """A pretrain run directory as `dsc pretrain` writes it (docs/run-format.md), with random weights."""
    import torch
    from torch import nn

    from dsc.backbones import create_backbone
    from dsc.train.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    bb = create_backbone(f"timm:{model}")
    head = nn.Linear(bb.feature_dim, 8)
    run_dir.mkdir(parents=True)
    for name in ("best", "last"):
        save_checkpoint(run_dir, name, {"encoder": bb.module, "head": head}, {"epoch": 1, "val_metric": 0.5})
    info = {
        "schema": "dsc-run/1", "command_name": "pretrain", "status": "complete", "seed": seed,
        "settings": {"backbone": f"timm:{model}", "image_size": image_size, "seed": seed},
        "inputs": {"data": {"path": str(data.path), "fingerprint": data.fingerprint},
                   "synthetic": [{"path": str(s.path), "fingerprint": s.fingerprint} for s in synthetic],
                   "negatives": []},
        "backbone": {"name": f"timm:{model}", "model_id": bb.model_id, "feature_dim": bb.feature_dim,
                     "data_config": bb.data_config},
        "timings": {"total": 1.5},
    }
    (run_dir / "run.json").write_text(json.dumps(info, default=str))
    return run_dir
