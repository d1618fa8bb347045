"""Options and helpers shared by command modules (kept free of heavy imports)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from dsc.console import out

Force = Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue an interrupted job where it stopped.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]

# The report's files and pictures, shared by `dsc report` and `dsc study`.
_PICTURES = "Pictures"
Markdown = Annotated[Path | None, typer.Option("--markdown", help="Also write the report as Markdown.",
                                               show_default=False)]
Html = Annotated[Path | None, typer.Option("--html", help="Also write the report as one self-contained HTML file "
                                           "(tables; the pictures asked for embedded).", show_default=False)]
ResultsFigure = Annotated[Path | None, typer.Option(
    "--results-figure", help="Figure (.png, .pdf or .svg by suffix): per configuration the primary metric's mean, "
    "interval and seeds, baseline marked; corruption and OOD AUROC panels when measured.",
    rich_help_panel=_PICTURES, show_default=False)]
Samples = Annotated[Path | None, typer.Option(
    "--samples", help="Figure per class: real | normal synthetic | OOD synthetic images (dsc report: needs --data).",
    rich_help_panel=_PICTURES, show_default=False)]
Confusion = Annotated[Path | None, typer.Option(
    "--confusion", help="Figure: the confusion matrix of each configuration (summed over seeds), 3 per row.",
    rich_help_panel=_PICTURES, show_default=False)]
EmbeddingMap = Annotated[Path | None, typer.Option(
    "--embedding-map", help="Figure: 2-D PCA of a run's test features from embeddings.h5, held-out classes and "
    "synthetic OOD marked.", rich_help_panel=_PICTURES, show_default=False)]
EmbeddingRun = Annotated[str | None, typer.Option(
    "--embedding-run", help="Run of --embedding-map: its directory or name, e.g. supcon-normal-s0 (default: the "
    "first run with embeddings.h5).", rich_help_panel=_PICTURES, show_default=False)]


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


def _default_text(option: Any, value: Any) -> str | None:
    """How a setting's default reads in --help (``None`` when it has none worth showing)."""
    if value is None:
        return None
    if isinstance(value, bool):
        names = option.opts if value else option.secondary_opts
        return names[0] if names else str(value).lower()
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) if value else None
    if isinstance(value, dict):
        return None
    return str(value)


def polish_help(group: Any) -> None:
    """Every command's --help shows the default of each setting an option falls through to (the option's own
    default is None, so that lower settings layers apply), and flags show no type placeholder."""
    from rich.markup import escape

    from dsc.settings import DscSettings

    _keep_option_names_whole()
    _hide_flag_types(group)
    if group.help:  # one paragraph per blank line; a docstring's line breaks are not the help's
        group.help = re.sub(r"(?<!\n)\n(?!\n)", " ", group.help)
    for name, command in getattr(group, "commands", {}).items():
        polish_help(command)
        field = DscSettings.model_fields.get(name)
        if field is None:
            continue
        fields = field.annotation.model_fields  # type: ignore[union-attr]
        for param in command.params:
            if param.param_type_name != "option" or param.default is not None:
                continue
            info = fields.get((param.name or "").rstrip("_"))
            help_text = param.help or ""
            if info is None or "default" in help_text.lower():
                continue
            text = _default_text(param, info.get_default(call_default_factory=True))
            if text is not None:
                param.help = f"{help_text} \\[default: {escape(text)}]".strip()


def _hide_flag_types(command: Any) -> None:
    """No ``<bool>`` after a flag (--help included); ``<path>``, not ``<list[Path]>``, for repeatable options."""
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
        elif getattr(param, "multiple", False) and param.metavar is None:
            label = param.bare_type() if hasattr(param, "bare_type") else param.type.name
            param.metavar = "<" + re.sub(r"^list\[(\w+)\]$", r"\1", label).lower() + ">"
    original = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = original(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option


def _keep_option_names_whole() -> None:
    """Rich shrinks every wrappable column of typer's help tables, so at 80 columns it cut option names
    (``--synthetic-probabil…``); the name and type columns are made no-wrap, only the help text wraps
    (and folds a word longer than its column)."""
    from rich.table import Table
    from typer import rich_utils

    if getattr(rich_utils, "Table", None) is not Table:  # patched already, or a typer without it
        return

    from rich.columns import Columns
    from rich.text import Text

    class HelpTable(Table):
        def add_row(self, *renderables: Any, **kwargs: Any) -> None:
            cells = list(renderables)
            last = cells[-1] if cells else None
            if isinstance(last, Columns) and all(isinstance(r, Text) for r in last.renderables):
                cells[-1] = Text(" ").join(last.renderables)  # Columns would cut a long word with "…"
            super().add_row(*cells, **kwargs)
            for column in self.columns[:-1]:
                column.no_wrap = True
            self.columns[-1].overflow = "fold"  # a long word (a model id) folds, is not cut

    rich_utils.Table = HelpTable  # type: ignore[misc]
