"""What every output records about how it was made: versions, command line, time, host."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

TRACKED = ("dsc", "torch", "torchvision", "diffusers", "transformers", "timm", "h5py", "numpy",
           "accelerate", "safetensors", "pillow")


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape results (read from metadata, nothing imported)."""
    out = {"python": platform.python_version()}
    for name in TRACKED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def now() -> str:
    """UTC timestamp, ISO 8601, seconds."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


#: The arguments the ``dsc`` entry point was given (set by :func:`record_argv`); None outside the CLI.
_ARGV: list[str] | None = None


def record_argv(argv: Sequence[str] | None) -> None:
    """Remember the arguments the CLI parses, so outputs record exactly what the user typed (also when
    ``dsc.cli.main.main`` is called in-process with an argument list); None forgets them."""
    global _ARGV
    _ARGV = None if argv is None else [str(a) for a in argv]


def command_line() -> str:
    """The command as the user gave it, shell-quoted so it can be pasted back (``dsc subset -o 'a b.h5'``).

    Inside the CLI it is ``dsc`` followed by the recorded arguments; elsewhere the process's ``sys.argv``.
    """
    if _ARGV is not None:
        return shlex.join(["dsc", *_ARGV])
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def threads_record() -> dict[str, Any]:
    """The CPU threads the command computed with (dsc/threads.py)."""
    from dsc.threads import record

    return record()


def provenance(settings: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """The standard provenance block: created, command, versions, host, settings and extras."""
    block = {
        "created": now(),
        "command": command_line(),
        "versions": versions(),
        "host": {"platform": platform.platform(), "machine": platform.machine()},
        "threads": threads_record(),
    }
    if settings is not None:
        block["settings"] = settings
    block.update(extra)
    return block


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def json_hash(obj: Any) -> str:
    """Stable short hash of JSON-able data (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Timings(dict):
    """Named wall-clock timings in seconds: ``with timings.stage("decode"): ...``."""

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self[name] = round(self.get(name, 0.0) + time.perf_counter() - start, 4)
