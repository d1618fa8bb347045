"""Options and helpers shared by command modules (kept free of heavy imports)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from dsc.console import out

Force = Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue an interrupted job where it stopped.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


class State:
    """Global options (set by the root callback)."""

    config: Path | None = None
    debug: bool = False


def resolve(section: str, **cli_values: Any):
    """Resolve settings for one command section; ``None`` CLI values fall through to lower layers."""
    from dsc.settings import resolve_settings

    return resolve_settings({section: cli_values}, config_file=State.config)


def print_json(obj: Any) -> None:
    out.print_json(json.dumps(obj, default=str))


def split_csv(value: str | None, cast: type = str) -> list[Any] | None:
    """``"a,b,c"`` -> ``["a", "b", "c"]`` (``None`` stays ``None``)."""
    if value is None:
        return None
    return [cast(v.strip()) for v in value.split(",") if v.strip()]
