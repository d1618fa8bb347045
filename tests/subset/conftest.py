"""A small folder-tree dataset plugin and tree builder for subset tests (registered per test)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dsc import registry
from dsc.contracts import ClassInfo, DatasetOptions, DatasetPlugin, Record
from dsc.errors import InputError

COLOURS = [(220, 40, 40), (40, 200, 40), (40, 40, 220), (220, 200, 40), (200, 40, 200), (40, 200, 200)]


class TreeOptions(DatasetOptions):
    own_splits: bool = False


class TreePlugin(DatasetPlugin):
    """Test plugin: <root>/<class>/<group>-<n>.png (or train_/val_/test_ prefixed), masks in a mirror tree."""

    name = "testtree"
    summary = "test tree"
    Options = TreeOptions

    def _root(self) -> Path:
        root = self.options.root
        if root is None or not Path(root).is_dir():
            raise InputError(f"dataset root {root} does not exist")
        return Path(root)

    def classes(self) -> list[ClassInfo]:
        root = self._root()
        info = json.loads((root / "classes.json").read_text()) if (root / "classes.json").exists() else {}
        return [ClassInfo(d.name, tuple(info.get(d.name, {}).get("super", ())),
                          tuple(info.get(d.name, {}).get("tags", ())))
                for d in sorted(root.iterdir()) if d.is_dir()]

    def records(self, classes: Sequence[str]) -> Iterator[Record]:
        root = self._root()
        for c in classes:
            for f in sorted((root / c).iterdir()):
                if f.suffix.lower() not in (".png", ".jpg", ".jpeg"):
                    continue
                stem = f.stem
                split = None
                if self.options.own_splits and "_" in stem:
                    split, stem = stem.split("_", 1)
                group = stem.split("-")[0] if "-" in stem else None
                mask = (Path(self.options.masks) / c / (f.stem + ".png")) if self.options.masks else None
                yield Record(image=f, label=c, source=str(f.relative_to(root)), mask=mask, split=split,
                             group=group, meta={"file": f.name})

    def has_masks(self) -> bool:
        return self.options.masks is not None


def draw(rng: np.random.Generator, colour: tuple[int, int, int], size: tuple[int, int] = (48, 40)):
    """An image with one coloured rectangle on a grey background, and its exact mask."""
    w, h = size
    img = np.full((h, w, 3), 128, np.uint8)
    img += rng.integers(0, 20, img.shape, dtype=np.uint8)
    bw, bh = int(rng.integers(6, w // 2)), int(rng.integers(6, h // 2))
    x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
    img[y0:y0 + bh, x0:x0 + bw] = colour
    mask = np.zeros((h, w), np.uint8)
    mask[y0:y0 + bh, x0:x0 + bw] = 255
    return img, mask


def make_tree(root: Path, counts: dict[str, int], *, masks: Path | None = None, group_size: int = 1,
              splits: dict[str, str] | None = None, meta: dict | None = None, seed: int = 0,
              size: tuple[int, int] = (48, 40)) -> Path:
    """Write a tree; ``group_size`` images share a group; ``splits`` maps group index -> split prefix."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for ci, (c, n) in enumerate(counts.items()):
        (root / c).mkdir(exist_ok=True)
        if masks is not None:
            (masks / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            g = i // group_size
            name = f"{c}{g}-{i}"
            if splits is not None:
                name = f"{splits.get(str(g % 4), 'train')}_{name}"
            img, mask = draw(rng, COLOURS[ci % len(COLOURS)], size)
            Image.fromarray(img).save(root / c / f"{name}.png")
            if masks is not None:
                Image.fromarray(mask).save(masks / c / f"{name}.png")
    if meta:
        (root / "classes.json").write_text(json.dumps(meta))
    return root


@pytest.fixture
def testtree():
    registry.register("dataset", "testtree", TreePlugin)
    yield TreePlugin
    registry.unregister("dataset", "testtree")
