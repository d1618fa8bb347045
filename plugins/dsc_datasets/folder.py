"""``folder``: any image tree laid out as ``<root>/<class>/<image>``, with optional masks and metadata."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path

from pydantic import Field

from dsc.contracts import ClassInfo, DatasetOptions, DatasetPlugin, Record
from dsc.errors import InputError
from dsc_datasets import _metadata as md
from dsc_datasets._paths import check_inside, class_dirs, relpath, require_root, walk_images

log = logging.getLogger(__name__)

LAYOUT = "<root>/<class>/<image>"
PREFIX_SPLITS = (("train_", "train"), ("valid_", "val"), ("val_", "val"), ("test_", "test"))
TRUST_LINKS = " (or --option allow_outside_links=true if you made the links yourself)"
MASK_PREFERENCE = (".png", ".bmp", ".tif", ".tiff", ".webp", ".jpg", ".jpeg")


class FolderOptions(DatasetOptions):
    """Options of the ``folder`` dataset (paths: absolute, relative to the working directory or the root)."""

    metadata: Path | None = Field(
        default=None, description="class info / groups file (default: metadata.json or metadata.csv in root)")
    groups_csv: Path | None = Field(default=None, description="manifest CSV with one row per image")
    path_column: str = Field(default="path", description="manifest column holding <class>/<image> paths")
    group_column: str | None = Field(default=None, description="manifest column with the group (default 'group')")
    split_column: str | None = Field(default=None, description="manifest column with train/valid/test")
    split_from_prefix: bool = Field(default=False, description="split from train_/valid_/test_ file prefixes")
    allow_outside_links: bool = Field(default=False, description="accept symlinks pointing outside the root")


def _split_from_name(name: str) -> str | None:
    lower = name.lower()
    return next((split for prefix, split in PREFIX_SPLITS if lower.startswith(prefix)), None)


class FolderDataset(DatasetPlugin):
    """Images in one folder per class, optional parallel mask tree and metadata file."""

    name = "folder"
    summary = "Image folders <root>/<class>/<image> with optional masks tree and metadata file"
    Options = FolderOptions
    groups_hint = ('a manifest with one row per image (--option groups_csv=manifest.csv --option '
                   'group_column=COLUMN) or a "groups" map {"<class>/<image>": "<group>"} in the root\'s '
                   'metadata.json (docs/datasets.md)')
    options: FolderOptions

    @cached_property
    def root(self) -> Path:
        return require_root(self.options.root, self.name, LAYOUT)

    @cached_property
    def masks_root(self) -> Path | None:
        masks = self.options.masks
        if masks is None:
            return None
        masks = Path(masks).expanduser()
        if not masks.is_dir():
            raise InputError(f"mask directory {masks} does not exist or is not a directory",
                             hint="--masks must be a tree <masks>/<class>/<image> parallel to --root")
        return masks.resolve()

    def _option_path(self, value: Path, what: str) -> Path:
        path = Path(value).expanduser()
        if not path.is_absolute() and not path.exists():
            path = self.root / path
        if not path.is_file():
            raise InputError(f"{what} file {value} does not exist",
                             hint="give a path relative to the working directory or the dataset root")
        return path

    @cached_property
    def metadata(self) -> md.FolderMetadata:
        """Metadata file(s) merged: class file first, then the manifest."""
        opts = self.options
        meta = md.FolderMetadata()
        if opts.metadata is not None:
            path = self._option_path(opts.metadata, "metadata")
        else:
            path = next((p for p in (self.root / "metadata.json", self.root / "metadata.csv") if p.is_file()), None)
        if path is not None:
            reader = md.read_csv_metadata if path.suffix.lower() == ".csv" else None
            meta = reader(path) if reader else md.read_json_metadata(path, self.root)
        if opts.groups_csv is not None:
            group_col = opts.group_column or (None if opts.split_column else "group")
            manifest = md.read_groups_csv(self._option_path(opts.groups_csv, "groups_csv"), self.root,
                                          opts.path_column, group_col, opts.split_column)
            meta = md.merge(meta, manifest)
        elif opts.group_column or opts.split_column:
            raise InputError("group_column/split_column need a manifest", hint="also set groups_csv=PATH")
        if opts.split_from_prefix and meta.splits:
            raise InputError("split_from_prefix and a split column/splits map were both given",
                             hint="choose one source of splits")
        return meta

    @cached_property
    def _class_dirs(self) -> dict[str, Path]:
        exclude = (self.masks_root,) if self.masks_root else ()
        dirs = {d.name: d for d in class_dirs(self.root, exclude)}
        if not dirs:
            raise InputError(f"dataset root {self.root} has no class folders",
                             hint=f"the folder dataset expects {LAYOUT}")
        return dirs

    def classes(self) -> list[ClassInfo]:
        meta = self.metadata
        unknown = sorted(set(meta.classes) - set(self._class_dirs))
        if unknown:
            log.warning("metadata names %d class(es) without a folder, ignored: %s", len(unknown),
                        ", ".join(unknown[:5]))
        out = []
        for name in self._class_dirs:
            cm = meta.classes.get(name, md.ClassMeta())
            out.append(ClassInfo(name, cm.super_classes, cm.tags, cm.description))
        return out

    def has_masks(self) -> bool:
        return self.options.masks is not None

    def _mask_index(self, class_name: str) -> dict[str, Path]:
        """Mask paths of one class keyed by their relative path without extension."""
        assert self.masks_root is not None
        folder = self.masks_root / class_name
        if not folder.is_dir():
            log.warning("no mask folder %s for class %r", folder, class_name)
            return {}
        index: dict[str, Path] = {}
        rank = {ext: i for i, ext in enumerate(MASK_PREFERENCE)}
        for path in walk_images(folder):
            key = relpath(path.with_suffix(""), self.masks_root)
            old = index.get(key)
            if old is None or rank[path.suffix.lower()] < rank[old.suffix.lower()]:
                index[key] = path
        return index

    def records(self, classes: Sequence[str]) -> Iterator[Record]:
        dirs = self._class_dirs
        wanted = set(classes)
        unknown = sorted(wanted - set(dirs))
        if unknown:
            raise InputError(f"unknown class(es) {', '.join(unknown)} in {self.root}",
                             hint=f"available: {', '.join(dirs)}")
        meta = self.metadata
        for name, folder in dirs.items():
            if name not in wanted:
                continue
            masks = self._mask_index(name) if self.masks_root else None
            for path in walk_images(folder):
                yield self._record(name, path, meta, masks)

    def _record(self, label: str, path: Path, meta: md.FolderMetadata, masks: dict[str, Path] | None) -> Record:
        rel = relpath(path, self.root)
        if not self.options.allow_outside_links:
            check_inside(path, self.root, "image", TRUST_LINKS)
        record = Record(image=path, label=label, source=rel, group=meta.groups.get(rel))
        if self.options.split_from_prefix:
            record.split = _split_from_name(path.name)
            if record.split is None:
                raise InputError(f"image {rel} has no train_/valid_/test_ prefix",
                                 hint="rename it or drop split_from_prefix")
        elif meta.splits:
            record.split = meta.splits.get(rel)
            if record.split is None:
                raise InputError(f"image {rel} has no split in {', '.join(meta.sources)}",
                                 hint="give every image a split or none")
        if masks is not None:
            mask = masks.get(relpath(path.with_suffix(""), self.root))
            if mask is None:
                record.meta["mask"] = "missing"
            else:
                if not self.options.allow_outside_links:
                    check_inside(mask, self.masks_root, "mask", TRUST_LINKS)  # type: ignore[arg-type]
                record.mask = mask
        return record
