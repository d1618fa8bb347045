"""An example third-party dsc dataset plugin: stripe patterns in three orientations, drawn in code.

Install it next to dsc (``pip install -e examples/dsc-example-plugin``) and it shows up in
``dsc plugins`` and works with ``dsc subset --dataset stripes``. Everything a dataset plugin needs is here:
a ``DatasetPlugin`` subclass with ``name``, ``summary``, an ``Options`` model, ``classes()``, ``records()``
and ``has_masks()``. Heavy imports (numpy) happen inside methods so ``dsc plugins`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pydantic import Field

from dsc.contracts import ClassInfo, DatasetOptions, DatasetPlugin, Record
from dsc.errors import InputError

ANGLES = {"horizontal": 0.0, "vertical": 90.0, "diagonal": 45.0}


class StripesOptions(DatasetOptions):
    """Options: how many images per class, their size and the seed."""

    per_class: int = Field(default=20, ge=1, description="images per class")
    image_size: int = Field(default=64, ge=8, le=1024)
    seed: int = 0


class StripesDataset(DatasetPlugin):
    """Stripe patterns (horizontal, vertical, diagonal) with random colours and periods."""

    name = "stripes"
    summary = "Example third-party plugin: stripe patterns in three orientations"
    Options = StripesOptions
    options: StripesOptions

    def classes(self) -> list[ClassInfo]:
        return [ClassInfo(name, super_classes=("Pattern",), tags=("synthetic",),
                          description=f"{name} stripes") for name in ANGLES]

    def records(self, classes: Sequence[str]) -> Iterator[Record]:
        import numpy as np

        unknown = sorted(set(classes) - set(ANGLES))
        if unknown:
            raise InputError(f"unknown stripes class(es) {', '.join(unknown)}", hint=f"use {', '.join(ANGLES)}")
        size = self.options.image_size
        y, x = np.mgrid[0:size, 0:size].astype(np.float32)
        for k, (name, angle) in enumerate(ANGLES.items()):
            if name not in classes:
                continue
            for i in range(self.options.per_class):
                g = np.random.default_rng([self.options.seed, k, i])
                a = np.radians(angle + g.uniform(-10, 10))
                period = g.uniform(4, 12)
                wave = np.sin((x * np.sin(a) + y * np.cos(a)) * 2 * np.pi / period) > 0
                c1, c2 = g.integers(0, 256, (2, 3))
                image = np.where(wave[..., None], c1, c2).astype(np.uint8)
                yield Record(image=image, label=name, source=f"stripes:{name}/{i}")
