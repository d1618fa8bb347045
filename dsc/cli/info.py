"""``dsc info FILE``: what a store holds and how it was made."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dsc.cli.common import JsonFlag, print_json


def info(
    file: Annotated[Path, typer.Argument(help="A dsc store (.h5).", show_default=False)],
    json_: JsonFlag = False,
) -> None:
    """Classes, counts per split and class, resolution, masks and provenance of a store."""
    from dsc.cli.render import render_summary
    from dsc.store import open_store

    with open_store(file) as store:
        summary = store.summary()
    if json_:
        print_json(summary)
    else:
        render_summary(summary)
