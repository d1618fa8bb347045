"""``mvip``: Fraunhofer IPK's multi-view industrial-parts dataset (MVIP) in its published layout.

::

    <root>/<class>/meta.json                       super_class (list), description, tags
    <root>/<class>/train_data/<set>/<orientation>/cam_<NN>/<NN>_rgb.png   (+ <NN>_rgb_mask_gen.png)
    <root>/<class>/valid_data/<set>/cam_<NN>/<NN>_rgb.png                  (no orientation level)
    <root>/<class>/test_data/<set>/cam_<NN>/<NN>_rgb.png

Splits come from the folders (``valid_data`` -> ``val``); each set (one physical recording session of an
object) is a group ``<class>/<split>/<set>``. Depth images and per-view meta files are ignored.
``write_fake_mvip`` writes a small tree in this layout for tests and demos.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from dsc.contracts import ClassInfo, DatasetOptions, DatasetPlugin, Record
from dsc.errors import InputError
from dsc_datasets._metadata import as_tuple
from dsc_datasets._paths import check_inside, class_dirs, relpath, require_root

log = logging.getLogger(__name__)

LAYOUT = "<root>/<class>/meta.json and <class>/{train,valid,test}_data/<set>/.../cam_<NN>/<NN>_rgb.png"
SPLIT_DIRS = (("train_data", "train"), ("valid_data", "val"), ("test_data", "test"))
RGB_SUFFIX = "_rgb.png"
MASK_SUFFIX = "_rgb_mask_gen.png"


class MvipOptions(DatasetOptions):
    """Options of the ``mvip`` dataset (masks come from the tree; ``--masks`` is not used)."""

    cameras: list[int] | None = Field(default=None, description="only these camera numbers (cam_<NN>)")

    @field_validator("cameras", mode="before")
    @classmethod
    def _csv(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [int(x) for x in v.split(",") if x.strip()]
        if isinstance(v, int):
            return [v]
        return v


def _walk_rgb(folder: Path) -> Iterator[Path]:
    """``*_rgb.png`` files under ``folder``, sorted by relative path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(os.path.join(dirpath, n) for n in filenames if n.endswith(RGB_SUFFIX))
    for path in sorted(found):
        yield Path(path)


def _read_meta(path: Path) -> ClassInfo:
    name = path.parent.name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"cannot read {path}: {exc}", hint="fix or remove the class's meta.json") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a JSON object", hint='e.g. {"super_class": ["CarComponent"]}')
    supers = data.get("super_class", data.get("super_classes"))
    description = data.get("description", "")
    if isinstance(description, list):
        description = " ".join(str(d) for d in description)
    return ClassInfo(name, as_tuple(supers, f"{path}: super_class"), as_tuple(data.get("tags"), f"{path}: tags"),
                     str(description or ""))


class MvipDataset(DatasetPlugin):
    """MVIP multi-view industrial parts: per-class meta.json, train/valid/test folders, generated masks."""

    name = "mvip"
    summary = "MVIP multi-view industrial parts: meta.json classes, train/valid/test sets, masks"
    Options = MvipOptions
    options: MvipOptions

    def __init__(self, options: DatasetOptions | None = None) -> None:
        super().__init__(options)
        if self.options.masks is not None:
            raise InputError("the mvip dataset reads its masks from *_rgb_mask_gen.png files",
                             hint="drop --masks")

    @cached_property
    def root(self) -> Path:
        return require_root(self.options.root, self.name, LAYOUT)

    @cached_property
    def _class_dirs(self) -> dict[str, Path]:
        dirs = {d.name: d for d in class_dirs(self.root)
                if (d / "meta.json").is_file() or any((d / s).is_dir() for s, _ in SPLIT_DIRS)}
        if not dirs:
            raise InputError(f"{self.root} has no MVIP class folders",
                             hint=f"expected {LAYOUT}; for plain image folders use --dataset folder")
        return dirs

    def classes(self) -> list[ClassInfo]:
        out = []
        for name, folder in self._class_dirs.items():
            meta = folder / "meta.json"
            if meta.is_file():
                out.append(_read_meta(meta))
            else:
                log.warning("class %r has no meta.json (no super-classes or description)", name)
                out.append(ClassInfo(name))
        return out

    def has_masks(self) -> bool:
        return True

    def records(self, classes: Sequence[str]) -> Iterator[Record]:
        dirs = self._class_dirs
        unknown = sorted(set(classes) - set(dirs))
        if unknown:
            raise InputError(f"unknown class(es) {', '.join(unknown)} in {self.root}",
                             hint=f"available: {', '.join(dirs)}")
        wanted = set(classes)
        for name, folder in dirs.items():
            if name not in wanted:
                continue
            for split_dir, split in SPLIT_DIRS:
                base = folder / split_dir
                if base.is_dir():
                    for path in _walk_rgb(base):
                        record = self._record(name, split, base, path)
                        if record is not None:
                            yield record

    def _record(self, label: str, split: str, base: Path, path: Path) -> Record | None:
        parts = Path(os.path.relpath(path, base)).parts  # <set>/[<orientation>/]cam_<NN>/<file>
        camera = next((p for p in parts[:-1] if p.startswith("cam_")), None)
        if self.options.cameras is not None:
            try:
                number = int(camera[4:]) if camera else None
            except ValueError:
                number = None
            if number not in self.options.cameras:
                return None
        check_inside(path, self.root, "image")
        set_name = parts[0] if len(parts) > 1 else ""
        orientation = parts[1] if len(parts) > 3 else None
        meta: dict[str, Any] = {"set": set_name, "camera": camera}
        if orientation is not None:
            meta["orientation"] = orientation
        mask = path.with_name(path.name[: -len(RGB_SUFFIX)] + MASK_SUFFIX)
        if mask.is_file():
            check_inside(mask, self.root, "mask")
        else:
            mask, meta["mask"] = None, "missing"
        return Record(image=path, label=label, source=relpath(path, self.root), mask=mask, split=split,
                      group=f"{label}/{split}/{set_name}", meta=meta)


# --------------------------------------------------------------------------------------- fake trees
def write_fake_mvip(
    root: Path | str,
    classes: int | Sequence[str] = 3,
    *,
    sets: tuple[int, int, int] = (2, 1, 1),
    orientations: int = 2,
    cameras: int = 2,
    size: int = 64,
    seed: int = 0,
) -> Path:
    """Write a small MVIP-layout tree of toyparts renderings (for tests and demos); returns ``root``.

    ``classes``: a number (the first toyparts classes) or toyparts class names. ``sets``: sets per split
    (train, valid, test); each set is one rendered object seen by every camera (and, for train, in every
    orientation). Depth images and per-view meta files are written too, as in the real dataset.
    """
    import numpy as np
    from PIL import Image

    from dsc_datasets._toyrender import object_look, render
    from dsc_datasets._toyshapes import CATALOGUE

    by_name = {c.name: c for c in CATALOGUE}
    names = [c.name for c in CATALOGUE[:classes]] if isinstance(classes, int) else list(classes)
    missing = [n for n in names if n not in by_name]
    if missing:
        raise InputError(f"unknown toyparts class(es) {missing}", hint=f"available: {', '.join(by_name)}")
    root = Path(root)
    for ci, name in enumerate(names):
        spec = by_name[name]
        cdir = root / name
        cdir.mkdir(parents=True, exist_ok=True)
        meta = {"class_name": name, "super_class": list(spec.super_classes), "description": spec.description,
                "tags": list(spec.tags)}
        (cdir / "meta.json").write_text(json.dumps(meta, indent=2))
        obj = 0
        for (split_dir, split), n_sets in zip(SPLIT_DIRS, sets, strict=True):
            for s in range(n_sets):
                g_obj = np.random.default_rng([seed, ci, obj])
                part, look = spec.draw(g_obj), object_look(g_obj)
                obj += 1
                levels = [f"orientation_{o}" for o in range(orientations)] if split == "train" else [None]
                for oi, level in enumerate(levels):
                    for cam in range(cameras):
                        folder = cdir / split_dir / f"{s:04d}"
                        folder = (folder / level if level else folder) / f"cam_{cam:02d}"
                        folder.mkdir(parents=True, exist_ok=True)
                        g_view = np.random.default_rng([seed, ci, obj, oi, cam])
                        image, mask, _ = render(part, look, g_view, size)
                        Image.fromarray(image).save(folder / f"{cam:02d}_rgb.png")
                        Image.fromarray(mask).save(folder / f"{cam:02d}_rgb_mask_gen.png")
                        Image.fromarray((mask // 4).astype(np.uint16)).save(folder / f"{cam:02d}_depth.png")
                        (folder / f"{cam:02d}_meta.json").write_text(json.dumps({"camera": cam}))
    return root
