"""Safe outputs: refuse to overwrite without --force, write to a temporary name, rename when complete,
one writer per output (``dsc.locks``), a clear error when the disk fills up (see docs/security.md)."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any

from dsc.errors import InputError, OutputExistsError, ResourceError

log = logging.getLogger(__name__)


def partial_path(path: Path) -> Path:
    """The temporary name an output is written under until it is complete (resumable jobs reuse it)."""
    return path.with_name(path.name + ".partial")


def check_output(path: Path, *, force: bool = False, resume: bool = False) -> None:
    """Validate an output path before any work starts.

    Also refuses at once an output that another live process is writing (its ``<output>.lock``), so a
    second command fails before loading models; ``--force`` does not override that.
    """
    from dsc.locks import check_not_locked

    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"output directory {parent} does not exist", hint=f"create it: mkdir -p {parent}")
    check_not_locked(path)
    if path.exists() and not (force or resume):
        raise OutputExistsError(
            f"{path} already exists", hint="pass --force to overwrite it" + (
                " or --resume to continue it" if path.is_dir() else "")
        )
    claim(path)
    claim(partial_path(path))


# ------------------------------------------------------------------------------ nothing left behind
#: Outputs this process was asked to create that did not exist then (absolute path -> path). A command that
#: fails or is interrupted removes those of them that hold no work (``discard_unused``), so the corrected
#: retry is not refused by an empty folder the failed attempt made.
_CLAIMED: dict[str, Path] = {}
#: Files a command writes into its output folder before any work is done (an augment plan, a token
#: manifest without tokens): a folder holding nothing else holds no work.
BOOKKEEPING = frozenset({"plan.json", "tokens.json"})


def claim(path: Path) -> None:
    """Note that this command will create ``path`` (only if it does not exist now)."""
    path = Path(path)
    key = os.path.abspath(path)
    if key not in _CLAIMED and not (path.exists() or path.is_symlink()):
        _CLAIMED[key] = path


def forget_claims() -> None:
    """Start a new command: no output is claimed."""
    _CLAIMED.clear()


def holds_no_work(path: Path) -> bool:
    """True for a real folder whose files are all ``BOOKKEEPING`` ones (or that has none). Files, links and
    anything else count as work."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    for root, dirs, files in os.walk(path, followlinks=False):
        if any(f not in BOOKKEEPING for f in files):
            return False
        if any(Path(root, d).is_symlink() for d in dirs):
            return False
    return True


def discard_unused() -> list[Path]:
    """Remove the claimed outputs that this command created but left without work; returns them.

    Only folders are removed, and only when every file in them is a ``BOOKKEEPING`` file: nothing a user
    made, and nothing a finished or resumable step wrote, is ever deleted."""
    removed = []
    for key, path in list(_CLAIMED.items()):
        if holds_no_work(path):
            with suppress(OSError):
                shutil.rmtree(path)
                removed.append(path)
        _CLAIMED.pop(key, None)
    if removed:
        log.debug("removed what the failed command had created: %s", ", ".join(map(str, removed)))
    return removed


def remove(path: Path) -> None:
    """Remove a file or directory if present."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def commit(tmp: Path, final: Path) -> None:
    """Atomically move a finished temporary output into place (replacing an old one under --force).

    After a Ctrl-C it raises ``KeyboardInterrupt`` instead, even when the interrupt's exception was
    swallowed on the way (``dsc.interrupts``): an interrupted command never leaves a final output."""
    from dsc import interrupts

    interrupts.check()
    final = Path(final)
    if final.is_dir() and not final.is_symlink():
        old = final.with_name(final.name + ".old")
        remove(old)
        os.replace(final, old)
        os.replace(tmp, final)
        remove(old)
    else:
        os.replace(tmp, final)


# ------------------------------------------------------------------------------------------ disk full
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error means "no space left" (``OSError`` errno, or HDF5's message text via h5py)."""
    if not isinstance(exc, OSError):
        return False
    if exc.errno in DISK_FULL_ERRNOS:
        return True
    text = str(exc)
    return "No space left" in text or "errno = 28" in text or "Disk quota exceeded" in text


def disk_full_error(path: Path, *, resumable: bool = True) -> ResourceError:
    """The error raised when the disk fills up while writing ``path`` (its previous state is kept)."""
    return ResourceError(f"disk full while writing {path}",
                         hint="free space and rerun with --resume" if resumable else "free space and rerun")


def _create_temp(path: Path) -> tuple[int, str]:
    """A new, exclusively created temporary file next to ``path``: (fd, name).

    Created with mode 0o666 filtered by the process's umask, like any file the user makes (and like the
    stores); ``tempfile.mkstemp`` would make it 0600, so reports, run.json and tokens were private.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        name = str(path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {path}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, fsync, rename over ``path``.

    On any error (a full disk raises ``ResourceError``) the temporary file is removed and ``path`` keeps its
    previous content.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = _create_temp(path)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full_error(path) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
