"""Fixtures for the diffusion tests: the tiny model (built once per session) and small DATA.h5 files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.threads import one_torch_thread


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def tiny_path(dsc_cache: Path) -> Path:
    from dsc.diffusion.tiny import tiny_model_path

    return tiny_model_path(dsc_cache)


@pytest.fixture
def components(tiny_path: Path):
    """A freshly loaded tiny model (tests may install tokens into it)."""
    from dsc.diffusion.models import load_components

    return load_components(str(tiny_path))


def make_data(path: Path, classes: tuple[str, ...] = ("brake caliper", "gear"), per_class: int = 4,
              size: int = 64, splits: tuple[str, ...] = ("train", "train", "val", "test"),
              masks: bool = False, seed: int = 0) -> Path:
    """A small kind="data" store: per class ``per_class`` images (a coloured square per class, noise)."""
    from dsc.store import StoreWriter

    rng = np.random.default_rng(seed)
    images, labels, split, group, source, mask_rows = [], [], [], [], [], []
    for c in range(len(classes)):
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            lo, hi = size // 4 + i % 3, 3 * size // 4
            img[lo:hi, lo:hi] = np.array([200 * (c % 2), 120, 200 * (1 - c % 2)], dtype=np.uint8)
            images.append(img)
            m = np.zeros((size, size), dtype=np.uint8)
            m[lo:hi, lo:hi] = 255
            mask_rows.append(m)
            labels.append(c)
            split.append(splits[i % len(splits)])
            group.append(f"{classes[c]}-{i}")
            source.append(f"mem://{classes[c]}/{i}.png")
    with StoreWriter(path, kind="data", attrs={"settings": {"test": True}}) as w:
        w.set_classes(list(classes))
        w.create_column("images", (size, size, 3), np.uint8)
        if masks:
            w.create_column("masks", (size, size), np.uint8)
        w.create_column("labels", (), np.int64)
        w.create_column("split", (), str)
        w.create_column("group", (), str)
        w.create_column("source", (), str)
        cols = dict(images=np.stack(images), labels=np.array(labels), split=split, group=group, source=source)
        if masks:
            cols["masks"] = np.stack(mask_rows)
        w.append(**cols)
        w.finalize()
    return path


@pytest.fixture
def data_h5(tmp_path: Path) -> Path:
    return make_data(tmp_path / "data.h5")
