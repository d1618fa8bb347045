"""Path helpers shared by the dataset plugins: image discovery and paths that must stay inside a root."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from dsc.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def is_image(name: str) -> bool:
    """Whether a file name has one of the supported image extensions (case-insensitive)."""
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def require_root(root: Path | None, dataset: str, layout: str) -> Path:
    """The dataset root, resolved; a clear error when it is not given, missing or not a directory."""
    if root is None:
        raise InputError(f"the {dataset} dataset needs a root directory",
                         hint=f"pass --root DIR (layout: {layout})")
    root = Path(root).expanduser()
    if not root.exists():
        raise InputError(f"dataset root {root} does not exist", hint="check the --root path")
    if not root.is_dir():
        raise InputError(f"dataset root {root} is not a directory",
                         hint=f"--root must be a folder laid out as {layout}")
    return root.resolve()


def class_dirs(root: Path, exclude: tuple[Path, ...] = ()) -> list[Path]:
    """Visible sub-directories of ``root``, sorted by name (``exclude``: resolved paths to skip)."""
    out = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith(".") or entry.name == "__pycache__" or not entry.is_dir():
            continue
        path = Path(entry.path)
        if path.resolve() in exclude:
            continue
        out.append(path)
    return out


def walk_images(folder: Path) -> Iterator[Path]:
    """Image files under ``folder`` (recursive, hidden entries skipped), sorted by relative path."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = os.path.relpath(dirpath, folder)
        for name in filenames:
            if is_image(name):
                found.append(name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/"))
    for rel in sorted(found):
        yield folder / rel


def check_inside(path: Path, root: Path, what: str, hint: str = "") -> Path:
    """``path`` resolved (symlinks followed); an ``InputError`` if it lies outside ``root``."""
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise InputError(f"{what} {path} points outside the dataset root {root}",
                         hint="datasets must not reference files outside their root; copy the file "
                              "into the dataset or fix the link" + hint)
    return resolved


def safe_relative(value: str, root: Path, what: str) -> str:
    """A relative POSIX path from a metadata file, rejected if absolute or escaping ``root`` with ``..``."""
    text = value.strip().replace("\\", "/")
    rel = PurePosixPath(text)
    if not text or rel.is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise InputError(f"{what}: path {value!r} is not relative to the dataset root {root}",
                         hint="metadata paths must be relative, like <class>/<image>")
    if ".." in rel.parts:
        raise InputError(f"{what}: path {value!r} escapes the dataset root {root} with '..'",
                         hint="metadata paths must stay inside the dataset root")
    return str(rel)


def relpath(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as a POSIX string (no symlink resolution)."""
    return Path(os.path.relpath(path, root)).as_posix()
