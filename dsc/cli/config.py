"""``dsc config show``: the resolved settings and where each value came from."""

from __future__ import annotations

from typing import Annotated

import typer

from dsc.cli.common import JsonFlag, State, print_json

app = typer.Typer(help="Inspect settings (command line > DSC_* environment > TOML file > defaults).",
                  no_args_is_help=True)


@app.command("show")
def show(
    section: Annotated[str | None, typer.Argument(help="Only this section, e.g. subset.")] = None,
    json_: JsonFlag = False,
) -> None:
    """Print the resolved settings with the source of every value."""
    from rich.table import Table

    from dsc.console import out
    from dsc.errors import ConfigError
    from dsc.settings import DscSettings, resolve_settings
    from dsc.settings.resolve import flatten

    resolved = resolve_settings(config_file=State.config, strict=False)
    if section is not None and section not in DscSettings.model_fields:
        raise ConfigError(f"unknown settings section {section!r}",
                          hint=f"use one of {', '.join(DscSettings.model_fields)}")
    values = flatten(resolved.settings.model_dump(mode="json"))
    rows = [(k, v, resolved.sources[k]) for k, v in values.items()
            if k in resolved.sources and (section is None or k.startswith(section + "."))]
    errors = {s: e for s, e in resolved.errors.items() if section is None or s in (section, "settings")}
    if json_:
        print_json({"config_file": str(resolved.config_file) if resolved.config_file else None,
                    "settings": {k: {"value": v, "source": s} for k, v, s in rows}, "errors": errors})
        _fail(errors)
        return
    cfg = resolved.config_file or "none (./dsc.toml not found)"
    table = Table(title=f"dsc settings  (config file: {cfg})", title_justify="left")
    table.add_column("key")
    table.add_column("value", overflow="fold")
    table.add_column("source")
    for k, v, s in rows:
        table.add_row(k, repr(v), s, style=None if s == "default" else "bold")
    out.print(table)
    _fail(errors)


def _fail(errors: dict[str, str]) -> None:
    """After the valid settings: each broken section's error, then exit 1 (the commands reading it fail)."""
    if not errors:
        return
    from rich.markup import escape

    from dsc.console import err

    for name, message in errors.items():
        what = "settings" if name == "settings" else f"section [{name}] not shown (the commands that read it fail)"
        err.print(f"[bold red]Error:[/] {escape(what)}: {escape(message)}", highlight=False)
    raise typer.Exit(1)
