"""Safe outputs: refuse to overwrite without --force, write to a temporary name, rename when complete."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dsc.errors import InputError, OutputExistsError


def partial_path(path: Path) -> Path:
    """The temporary name an output is written under until it is complete (resumable jobs reuse it)."""
    return path.with_name(path.name + ".partial")


def check_output(path: Path, *, force: bool = False, resume: bool = False) -> None:
    """Validate an output path before any work starts."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"output directory {parent} does not exist", hint=f"create it: mkdir -p {parent}")
    if path.exists() and not (force or resume):
        raise OutputExistsError(
            f"{path} already exists", hint="pass --force to overwrite it" + (
                " or --resume to continue it" if path.is_dir() else "")
        )


def remove(path: Path) -> None:
    """Remove a file or directory if present."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def commit(tmp: Path, final: Path) -> None:
    """Atomically move a finished temporary output into place (replacing an old one under --force)."""
    final = Path(final)
    if final.is_dir() and not final.is_symlink():
        old = final.with_name(final.name + ".old")
        remove(old)
        os.replace(final, old)
        os.replace(tmp, final)
        remove(old)
    else:
        os.replace(tmp, final)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
