"""``toyparts``: a procedurally drawn dataset of mechanical parts; offline, deterministic by seed, with masks.

Each class (gear, washer, bolt, ...) has ``objects_per_class`` physical objects (the groups), each seen in
``views_per_object`` views. Every image depends only on (seed, class name, object, view), so asking for
fewer classes or objects never changes the images that remain.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator, Sequence

from pydantic import Field

from dsc.contracts import ClassInfo, DatasetOptions, DatasetPlugin, Record
from dsc.errors import InputError

log = logging.getLogger(__name__)

#: Class names in catalogue order (kept here so listing classes does not import numpy).
CLASS_NAMES = ("gear", "washer", "bolt", "spring", "bracket", "bearing", "nut", "pulley", "hex_key", "shaft",
               "flange", "sprocket", "circlip", "piston", "spark_plug", "brake_disc")


class ToyPartsOptions(DatasetOptions):
    """Options of the ``toyparts`` dataset (``root`` and ``masks`` are not used)."""

    num_classes: int | None = Field(default=None, ge=1, le=len(CLASS_NAMES),
                                    description="first N classes of the catalogue (default: all 16)")
    objects_per_class: int = Field(default=12, ge=1, le=1000, description="physical objects (groups) per class")
    views_per_object: int = Field(default=3, ge=1, le=1000, description="images of each object")
    image_size: int = Field(default=128, ge=32, le=1024, description="side of the square images, pixels")
    seed: int = Field(default=0, ge=0, description="generator seed")


class ToyPartsDataset(DatasetPlugin):
    """Procedural mechanical parts (gears, washers, bolts, springs, ...) with masks; the demo dataset."""

    name = "toyparts"
    summary = "Procedurally drawn mechanical parts with masks; offline, seeded (the demo dataset)"
    Options = ToyPartsOptions
    options: ToyPartsOptions

    def __init__(self, options: DatasetOptions | None = None) -> None:
        super().__init__(options)
        if self.options.root is not None or self.options.masks is not None:
            log.warning("toyparts generates its images and masks; --root/--masks are ignored")

    def _catalogue(self):
        from dsc_datasets._toyshapes import CATALOGUE

        return CATALOGUE[: self.options.num_classes or len(CATALOGUE)]

    def classes(self) -> list[ClassInfo]:
        return [ClassInfo(c.name, c.super_classes, c.tags, c.description) for c in self._catalogue()]

    def has_masks(self) -> bool:
        return True

    def records(self, classes: Sequence[str]) -> Iterator[Record]:
        import numpy as np

        from dsc_datasets._toyrender import object_look, render

        catalogue = self._catalogue()
        names = [c.name for c in catalogue]
        unknown = sorted(set(classes) - set(names))
        if unknown:
            raise InputError(f"unknown toyparts class(es) {', '.join(unknown)}", hint=f"available: {', '.join(names)}")
        opts = self.options
        wanted = set(classes)
        for cls in catalogue:
            if cls.name not in wanted:
                continue
            key = zlib.crc32(cls.name.encode())
            for obj in range(opts.objects_per_class):
                g_obj = np.random.default_rng([opts.seed, key, obj])
                part, look = cls.draw(g_obj), object_look(g_obj)
                group = f"{cls.name}/obj{obj:03d}"
                for view in range(opts.views_per_object):
                    g_view = np.random.default_rng([opts.seed, key, obj, view, 1])
                    image, mask, info = render(part, look, g_view, opts.image_size)
                    meta = {"object": obj, "view": view, "colour": look.colour_name, "texture": look.texture,
                            **info}
                    yield Record(image=image, label=cls.name, source=f"toyparts:{group}/view{view:03d}",
                                 mask=mask, group=group, meta=meta)
