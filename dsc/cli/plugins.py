"""``dsc plugins``: list installed dataset, backbone and augmenter plugins."""

from __future__ import annotations

from typing import Annotated

import typer

from dsc.cli.common import JsonFlag, print_json


def plugins(
    kind: Annotated[str | None, typer.Option(help="Only this kind: dataset, backbone or augmenter.")] = None,
    models: Annotated[str | None, typer.Option("--models", metavar="GLOB", help="List the backbone models "
                                               "whose name matches GLOB instead, e.g. 'resnet*' or "
                                               "'timm:convnext*'.", show_default=False)] = None,
    json_: JsonFlag = False,
) -> None:
    """List installed plugins: kind, name, distribution, version and summary (--models: backbone names)."""
    from rich.markup import escape
    from rich.table import Table

    from dsc.console import out
    from dsc.registry import list_plugins

    if models is not None:
        _list_models(models, json_)
        return

    rows = [{"kind": p.kind, "name": p.name, "distribution": p.distribution, "version": p.version,
             "summary": p.summary, "entry_point": p.value} for p in list_plugins(kind)]
    if json_:
        print_json(rows)
        return
    table = Table(title="dsc plugins", title_justify="left")
    for col in ("kind", "name", "distribution", "version", "summary"):
        table.add_column(col, overflow="fold")
    for r in rows:
        style = "red" if r["summary"].startswith("[broken]") else None
        table.add_row(r["kind"], r["name"], r["distribution"], r["version"], escape(r["summary"]), style=style)
    out.print(table)


def _list_models(pattern: str, json_: bool) -> None:
    """Backbone model specs matching ``pattern`` (``plugin:glob`` searches one plugin), one per line."""
    from dsc.backbones import list_backbones
    from dsc.console import count, err, out

    plugin, sep, glob = pattern.partition(":")
    names = list_backbones(glob, plugin=plugin) if sep else list_backbones(pattern)
    if json_:
        print_json(names)
        return
    for name in names:
        out.print(name, highlight=False)
    err.print(f"{count(len(names), 'backbone')} match {pattern!r}", highlight=False)
