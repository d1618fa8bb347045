"""``dsc plugins``: list installed dataset, backbone and augmenter plugins."""

from __future__ import annotations

from typing import Annotated

import typer

from dsc.cli.common import JsonFlag, print_json


def plugins(
    kind: Annotated[str | None, typer.Option(help="Only this kind: dataset, backbone or augmenter.")] = None,
    json_: JsonFlag = False,
) -> None:
    """List installed plugins: kind, name, distribution, version and summary."""
    from rich.markup import escape
    from rich.table import Table

    from dsc.console import out
    from dsc.registry import list_plugins

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
