"""Exports of the same report: Markdown (written here from the table model) and HTML (rich's recorded
console), both written atomically."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from dsc.outputs import atomic_write_text
from dsc.report.table import Section, render

MD_STYLE = {"best": "**{}**", "good": "{} ✓", "bad": "{} ✗"}


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(sections: list[Section], warnings: list[str] | None = None,
                title: str = "dsc report") -> str:
    lines = [f"# {title}", ""]
    for w in warnings or []:
        lines += [f"> **Warning:** {_md_escape(w)}", ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        lines.append("| " + " | ".join(_md_escape(c) for c in s.columns) + " |")
        lines.append("| " + " | ".join("---:" if i in s.right else "---" for i in range(len(s.columns))) + " |")
        for row in s.rows:
            cells = [MD_STYLE.get(c.style, "{}").format(_md_escape(c.text)) if c.text not in ("", "–", "—")
                     else c.text for c in row]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for n in s.notes:
            lines += [f"_{_md_escape(n)}_", ""]
    return "\n".join(lines).rstrip() + "\n"


def to_html(sections: list[Section], warnings: list[str] | None = None, title: str = "dsc report") -> str:
    console = Console(record=True, file=io.StringIO(), width=200, force_terminal=True, color_system="truecolor")
    console.print(f"[bold]{title}[/]")
    render(sections, console, warnings)
    return console.export_html(inline_styles=True)


def write_markdown(path: Path, sections: list[Section], warnings: list[str] | None = None) -> Path:
    atomic_write_text(Path(path), to_markdown(sections, warnings))
    return Path(path)


def write_html(path: Path, sections: list[Section], warnings: list[str] | None = None) -> Path:
    atomic_write_text(Path(path), to_html(sections, warnings))
    return Path(path)
