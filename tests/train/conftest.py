"""Tiny stores for training tests: 3 classes of 16x16 images with class-dependent colour and pattern."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dsc.store import Store, StoreWriter
from tests.threads import one_torch_thread

CLASSES = ["gear", "bolt", "spring"]


def _image(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    base = np.zeros((size, size, 3), dtype=np.float32)
    base[..., label] = 180
    yy, xx = np.mgrid[:size, :size]
    base[..., (label + 1) % 3] += 60 * (((xx // (2 + label)) % 2) == 0)
    base += rng.normal(0, 25, base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def make_data(path: Path, per_class: tuple[int, int, int] = (8, 3, 3), size: int = 16, seed: int = 0,
              holdout: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    images, labels, split = [], [], []
    for c in range(len(CLASSES)):
        for sp, n in zip(("train", "val", "test"), per_class, strict=True):
            for _ in range(n):
                images.append(_image(rng, c, size))
                labels.append(c)
                split.append(sp)
    for _ in range(holdout):
        images.append(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
        labels.append(-1)
        split.append("test")
    with StoreWriter(path, kind="data", attrs={"settings": {"test": True}}) as w:
        w.set_classes(CLASSES)
        w.create_column("images", (size, size, 3), np.uint8)
        w.create_column("labels", (), np.int64)
        w.create_column("split", (), str)
        w.append(images=np.stack(images), labels=np.array(labels), split=split)
        w.finalize()
    return path


def make_synthetic(path: Path, data: Path, *, ood: bool, per_image: int = 2, seed: int = 1,
                   evaluation_only: bool = False) -> Path:
    store = Store(data)
    rng = np.random.default_rng(seed)
    rows = store.indices("train")
    images, labels, is_ood, src_label, src_index, variant = [], [], [], [], [], []
    for r in rows:
        lab = int(store.labels[r])
        for v in range(per_image):
            img = store.images([r])[0].astype(np.int16) + rng.integers(-20, 20, store.image_shape)
            if ood:
                img = rng.integers(0, 255, store.image_shape)
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(-1 if ood else lab)
            is_ood.append(ood)
            src_label.append(lab)
            src_index.append(int(r))
            variant.append(v)
    attrs = {"inputs": {"data_fingerprint": store.fingerprint}, "evaluation_only": evaluation_only,
             "settings": {"mode": "ood" if ood else "normal"}}
    with StoreWriter(path, kind="synthetic", attrs=attrs) as w:
        w.set_classes(CLASSES)
        w.create_column("images", store.image_shape, np.uint8)
        for name in ("labels", "source_label", "source_index", "variant"):
            w.create_column(name, (), np.int64)
        w.create_column("is_ood", (), bool)
        w.append(images=np.stack(images), labels=np.array(labels), is_ood=np.array(is_ood),
                 source_label=np.array(src_label), source_index=np.array(src_index), variant=np.array(variant))
        w.finalize()
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, Path]:
    data = make_data(tmp_path / "data.h5", per_class=(6, 2, 2))
    return {"data": data, "synthetic": make_synthetic(tmp_path / "syn.h5", data, ood=False, per_image=1),
            "ood": make_synthetic(tmp_path / "ood.h5", data, ood=True, per_image=1)}
