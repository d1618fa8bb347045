"""Checks every command makes before it imports torch or loads anything: input paths exist.

A mistyped path fails in the time it takes to parse the command line, not after torch, the data or a model
has been loaded (and no output is created first). Plugin names are checked next, by the library code,
before any data is read (``dsc.backbones.check_backbone``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from dsc.errors import InputError

#: What to do when an input is missing, by the argument or option that named it.
MAKE = {
    "DATA.h5": "make it with `dsc subset`",
    "--synthetic": "make it with `dsc augment --mode normal`",
    "--negatives": "make it with `dsc augment --mode ood`",
    "--ood": "make it with `dsc augment --mode ood` or `dsc subset`",
    "--checkpoint": "pass the path of a .safetensors or .pt file",
    "--tokens": "make it with `dsc invert`",
    "RUN": "pass the --output folder of `dsc pretrain`",
    "--filter": "pass the --output folder of `dsc pretrain` or `dsc baseline`",
}


def require(what: str, paths: Path | str | Iterable[Path | str] | None, *, folder: bool | None = False) -> None:
    """Raise ``InputError`` naming the first of ``paths`` that does not exist, or is a folder where a file is
    expected (``folder=False``) or a file where a folder is (``folder=True``; None accepts either).
    ``what`` is the argument's name (``DATA.h5``, ``RUN``) or option (``--synthetic``)."""
    if paths is None:
        return
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        path = Path(path)
        name = f"{what} {path}" if what.startswith("--") else f"{path}"
        hint = MAKE.get(what, "check the path")
        if not path.exists():
            raise InputError(f"{name} does not exist", hint=hint)
        if folder is True and not path.is_dir():
            raise InputError(f"{name} is not a folder", hint=hint)
        if folder is False and path.is_dir():
            raise InputError(f"{name} is a folder, not a file", hint=hint)
