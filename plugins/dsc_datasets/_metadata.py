"""Reading the optional metadata files of the ``folder`` dataset (class info, per-image groups and splits)."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsc.errors import InputError
from dsc_datasets._paths import safe_relative

log = logging.getLogger(__name__)

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test"}


@dataclass
class ClassMeta:
    super_classes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""


@dataclass
class FolderMetadata:
    """What the metadata files say: class info by class name, group and split by relative image path."""

    classes: dict[str, ClassMeta] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    splits: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)


def as_tuple(value: Any, where: str) -> tuple[str, ...]:
    """A list of strings from a JSON list, a string (split on ``;`` or ``|``) or None."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        sep = ";" if ";" in value else "|"
        return tuple(v.strip() for v in value.split(sep) if v.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise InputError(f"{where}: expected a list of strings, got {value!r}",
                     hint='write e.g. ["Fastener", "Metal"]')


def normalise_split(value: str, where: str) -> str:
    """``train``/``val``/``test`` from common spellings (``valid`` -> ``val``)."""
    split = SPLIT_NAMES.get(value.strip().lower())
    if split is None:
        raise InputError(f"{where}: unknown split {value!r}", hint="use train, val (or valid) or test")
    return split


def _class_meta(entry: Any, where: str) -> ClassMeta:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: expected an object with super_classes/tags/description, got {entry!r}")
    supers = entry.get("super_classes", entry.get("super_class"))
    description = entry.get("description", "")
    if isinstance(description, list):
        description = " ".join(str(d) for d in description)
    return ClassMeta(as_tuple(supers, f"{where}.super_classes"), as_tuple(entry.get("tags"), f"{where}.tags"),
                     str(description or ""))


def read_json_metadata(path: Path, root: Path) -> FolderMetadata:
    """``{"classes": {name: {super_classes, tags, description}}, "groups": {path: group}, "splits": {...}}``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"metadata file {path} cannot be read: {exc}",
                         hint="fix the JSON or remove the file") from None
    if not isinstance(data, dict):
        raise InputError(f"metadata file {path} must hold a JSON object",
                         hint='e.g. {"classes": {...}, "groups": {...}}')
    unknown = set(data) - {"classes", "groups", "splits"}
    if unknown:
        raise InputError(f"metadata file {path} has unknown keys {sorted(unknown)}",
                         hint="allowed: classes, groups, splits")
    meta = FolderMetadata(sources=[str(path)])
    classes = data.get("classes") or {}
    if not isinstance(classes, dict):
        raise InputError(f"{path}: 'classes' must map class names to objects")
    for name, entry in classes.items():
        meta.classes[str(name)] = _class_meta(entry, f"{path}: classes.{name}")
    for key, target in (("groups", meta.groups), ("splits", meta.splits)):
        mapping = data.get(key) or {}
        if not isinstance(mapping, dict):
            raise InputError(f"{path}: '{key}' must map image paths (relative to the root) to strings")
        for rel, value in mapping.items():
            rel = safe_relative(str(rel), root, f"{path}: {key}")
            target[rel] = normalise_split(str(value), f"{path}: splits.{rel}") if key == "splits" else str(value)
    return meta


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"CSV file {path} cannot be read: {exc}", hint="fix or remove the file") from None


def read_csv_metadata(path: Path) -> FolderMetadata:
    """Per-class CSV: columns ``class`` and any of ``super_classes`` (``;``-separated), ``tags``, ``description``."""
    columns, rows = _read_csv(path)
    if "class" not in columns:
        raise InputError(f"metadata file {path} has no 'class' column (columns: {', '.join(columns)})",
                         hint="columns: class,super_classes,tags,description")
    meta = FolderMetadata(sources=[str(path)])
    for i, row in enumerate(rows, start=2):
        name = (row.get("class") or "").strip()
        if not name:
            raise InputError(f"{path}, line {i}: empty class name")
        meta.classes[name] = ClassMeta(
            as_tuple(row.get("super_classes") or row.get("super_class"), f"{path}, line {i}"),
            as_tuple(row.get("tags"), f"{path}, line {i}"),
            (row.get("description") or "").strip(),
        )
    return meta


def read_groups_csv(path: Path, root: Path, path_column: str, group_column: str | None,
                    split_column: str | None) -> FolderMetadata:
    """A manifest with one row per image: relative path plus a group column and/or a split column."""
    columns, rows = _read_csv(path)
    wanted = [c for c in (path_column, group_column, split_column) if c]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise InputError(f"manifest {path} has no column {', '.join(map(repr, missing))}",
                         hint=f"its columns are {', '.join(columns)}; set path_column/group_column/"
                              "split_column accordingly")
    meta = FolderMetadata(sources=[str(path)])
    for i, row in enumerate(rows, start=2):
        rel = safe_relative(row[path_column] or "", root, f"{path}, line {i}")
        if group_column and (row[group_column] or "").strip():
            meta.groups[rel] = row[group_column].strip()
        if split_column and (row[split_column] or "").strip():
            meta.splits[rel] = normalise_split(row[split_column], f"{path}, line {i}")
    return meta


def merge(a: FolderMetadata, b: FolderMetadata) -> FolderMetadata:
    """``b`` on top of ``a``."""
    return FolderMetadata({**a.classes, **b.classes}, {**a.groups, **b.groups}, {**a.splits, **b.splits},
                          a.sources + b.sources)
