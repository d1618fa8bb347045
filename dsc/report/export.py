"""Exports of the same report, both drawn from the table model and written atomically: Markdown (here) and
a self-contained HTML document (``dsc.report.html``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dsc.outputs import atomic_write_text
from dsc.report.html import Figure, to_html
from dsc.report.table import Section

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


def write_markdown(path: Path, sections: list[Section], warnings: list[str] | None = None) -> Path:
    atomic_write_text(Path(path), to_markdown(sections, warnings))
    return Path(path)


def write_html(path: Path, sections: list[Section], warnings: list[str] | None = None, *,
               report: dict[str, Any] | None = None, runs: Sequence[Any] = (), figures: Sequence[Figure] = (),
               command: str | None = None) -> Path:
    """The self-contained HTML report (``dsc.report.html.to_html``; figures embedded)."""
    atomic_write_text(Path(path), to_html(sections, warnings, report=report, runs=runs, figures=figures,
                                          command=command))
    return Path(path)
