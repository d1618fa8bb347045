"""Rich rendering of a store summary (used by `dsc info`)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from dsc.console import out


def render_summary(s: dict[str, Any]) -> None:
    attrs = s["attrs"]
    shape = "x".join(str(x) for x in s["image_shape"]) if s["image_shape"] else "-"
    out.print(f"[bold]{s['path']}[/]  {s['kind']} store, {s['n']} samples, {len(s['classes'])} classes, "
              f"images {shape}, masks {'yes' if s['masks'] else 'no'}")
    if attrs.get("evaluation_only"):
        out.print("[yellow]evaluation-only: never used for training[/]")
    splits = list(s["counts"])
    names = sorted({c for per in s["counts"].values() for c in per},
                   key=lambda c: s["classes"].index(c) if c in s["classes"] else len(s["classes"]))
    table = Table(title="samples per class and split", title_justify="left")
    table.add_column("class")
    for sp in splits:
        table.add_column(sp, justify="right")
    table.add_column("total", justify="right")
    for c in names:
        vals = [s["counts"][sp].get(c, 0) for sp in splits]
        table.add_row(c, *map(str, vals), str(sum(vals)))
    totals = [sum(s["counts"][sp].values()) for sp in splits]
    table.add_row("[bold]all[/]", *map(str, totals), str(sum(totals)))
    out.print(table)
    prov = Table(title="provenance", title_justify="left", show_header=False)
    prov.add_column("key", style="cyan")
    prov.add_column("value", overflow="fold")
    for key in ("fingerprint", "created", "dsc_version", "command", "plugin", "plugin_options", "inputs",
                "versions", "timings", "summary"):
        if key in attrs:
            prov.add_row(key, str(attrs[key]))
    out.print(prov)
