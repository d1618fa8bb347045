"""The report as one self-contained HTML document, drawn from the same table model as the terminal and
Markdown (``dsc.report.table``): a header (title, date, dsc version, command, the inputs and their
fingerprints), the warnings, the Findings, every section as a real ``<table>`` in a box of its own that
scrolls sideways on a narrow screen, then the figures embedded as ``data:`` URIs, so the one file can be
mailed. Styles for light and dark screens and for print are inline; no script, nothing fetched. All user
text (names, paths, notes) is escaped."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from dsc.report.html_style import CSS
from dsc.report.table import Cell, Section

#: A figure to embed: its title and the picture file (PNG, JPEG, GIF, WebP or SVG).
Figure = tuple[str, Path]

MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
        ".webp": "image/webp", ".svg": "image/svg+xml"}
MARK = {"good": " ✓", "bad": " ✗"}   # as in the Markdown export: the meaning survives greyscale print
#: Kept on one line: "± std" and an "[lo, hi]" interval (numeric columns do not wrap at all); in tables
#: also every word with a hyphen or slash (``top-1``, ``ce/none``), which browsers would break after it.
_KEEP = re.compile(r"± [^\s\[\]]+|\[[^\]]*\]")
_KEEP_WORDS = re.compile(r"± [^\s\[\]]+|\[[^\]]*\]|[^\s\[\]]*[-/][^\s\[\]]*(?:\[[^\]]*\])?")
#: Tables are split into parts no wider than BUDGET_PX (the page is about 1210 px wide at 1280 px), estimated
#: from the table font (FONT_PX), cell padding (PAD_PX) and the advance widths in em of DejaVu Sans, the widest
#: common sans-serif (tabular figures: digits, "." and "," alike); text cells wrap into lines of WRAP_EM
#: (td.long's min-width in html_style).
BUDGET_PX, FONT_PX, PAD_PX, WRAP_EM, BOLD = 1170, 14.0, 20, 11.0, 1.1
_EM = {**dict.fromkeys("0123456789.,", 0.64), **dict.fromkeys(" ijl'|!:;", 0.32), **dict.fromkeys("()[]/-tfr", 0.4),
       **dict.fromkeys("±+=<>~×", 0.84), **dict.fromkeys("mwMW%", 0.98)}


def _em(text: str) -> float:
    return sum(_EM.get(ch, 0.72 if ch.isupper() else 0.58) for ch in text)


def _text(text: str, words: bool = False) -> str:
    """Escaped text in which ``± std``, an ``[lo, hi]`` interval and (``words``) hyphenated words never wrap."""
    out, last = [], 0
    for m in (_KEEP_WORDS if words else _KEEP).finditer(text):
        if m.group():
            out += [escape(text[last:m.start()]), f'<span class="nw">{escape(m.group())}</span>']
            last = m.end()
    out.append(escape(text[last:]))
    return "".join(out)


def _width(text: str, wraps: bool) -> float:
    """Width in em a cell needs: all of it, or when it ``wraps``, its longest unbreakable part or a line."""
    if not wraps:
        return _em(text)
    units = [m.group() for m in _KEEP_WORDS.finditer(text) if m.group()] + text.split()
    return max(max((_em(u) for u in units), default=0.0), min(_em(text), WRAP_EM))


def column_groups(section: Section, budget: float = BUDGET_PX) -> list[list[int]]:
    """Column indices of the tables a section is shown as: all of them when they fit ``budget`` px, else
    consecutive groups that do, each led by the first column (the row's name), so no table of the report
    is wider than the page at 1280 px. Numeric (right-aligned) columns never wrap; text wraps at spaces."""
    n = len(section.columns)
    need = [PAD_PX + FONT_PX * max([BOLD * _width(h, True) for h in section.columns[i].split()]
                                   + [(BOLD if r[i].style == "best" else 1.0) * _width(r[i].text, i not in section.right)
                                      for r in section.rows if i < len(r)]) for i in range(n)]
    groups: list[list[int]] = [[0]]
    used = need[0] if n else 0.0
    for i in range(1, n):
        if len(groups[-1]) > 1 and used + need[i] > budget:
            groups.append([0])
            used = need[0]
        groups[-1].append(i)
        used += need[i]
    return groups


def _cell(cell: Cell, tag: str, numeric: bool) -> str:
    marked = any(ch.isdigit() for ch in cell.text)   # a number, not a sparkline or a dash
    text = cell.text + (MARK.get(cell.style or "", "") if marked else "")
    body = _text(text, words=not numeric)   # numeric cells do not wrap on screen; in print "± std" goes under
    if cell.style == "best":
        body = f"<strong>{body}</strong>"
    width = "" if numeric else "long" if _em(cell.text) > WRAP_EM else "mid" if _em(cell.text) > 6 else ""
    classes = " ".join(c for c in ("num" if numeric else "", width, cell.style or "") if c)   # width: html_style
    attrs = (' scope="row"' if tag == "th" else "") + (f' class="{classes}"' if classes else "")
    return f"<{tag}{attrs}>{body}</{tag}>"


def _table(section: Section, cols: list[int], label: str) -> str:
    num = ' class="num"'
    head = "".join(f'<th scope="col"{num if i in section.right else ""}>{_text(section.columns[i], True)}</th>'
                   for i in cols)
    rows = "".join("<tr>" + "".join(_cell(row[i], "th" if i == 0 else "td", i in section.right)
                                    for i in cols if i < len(row)) + "</tr>\n" for row in section.rows)
    return (f'<div class="table-box" role="region" aria-label="{escape(label)}" tabindex="0">'
            f"<table><caption>{escape(label)}</caption>\n"
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}</tbody></table></div>\n")


def table_html(section: Section, anchor: str) -> str:
    """A section as captioned ``<table>``s in scrolling boxes (one per column group), its notes under them."""
    groups = column_groups(section)
    tables = "".join(_table(section, cols, section.title if len(groups) == 1 else
                            f"{section.title}, part {k} of {len(groups)}") for k, cols in enumerate(groups, 1))
    notes = "".join(f'<p class="note">{_text(n)}</p>' for n in section.notes)
    return f'<section id="{anchor}"><h2>{escape(section.title)}</h2>\n{tables}{notes}</section>\n'


def findings_html(section: Section, anchor: str) -> str:
    """The Findings as questions and answers; rows that are not one of the numbered questions are caveats."""
    answers = [r for r in section.rows if r and r[0].text[:1].isdigit()]
    caveats = [r for r in section.rows if r and not r[0].text[:1].isdigit()]

    def dl(rows: list[list[Cell]]) -> str:
        return "<dl>" + "".join(f"<dt>{_text(r[0].text)}</dt><dd>{_text(r[1].text if len(r) > 1 else '')}</dd>"
                                for r in rows) + "</dl>\n"

    parts = [f'<section id="{anchor}" class="findings"><h2>{escape(section.title)}</h2>\n']
    if answers:
        parts.append(dl(answers))
    if caveats:
        parts += ["<h3>Caveats</h3>\n", dl(caveats)]
    parts += [f'<p class="note">{_text(n)}</p>' for n in section.notes]
    return "".join(parts) + "</section>\n"


def figure_html(title: str, path: Path) -> str:
    """A picture file embedded as a data: URI (a PDF or a missing file is named, not embedded)."""
    path = Path(path)
    mime = MIME.get(path.suffix.lower())
    if mime is None or not path.is_file():
        why = "missing" if not path.is_file() else f"a {path.suffix} file cannot be embedded; write .png or .svg"
        return f'<figure><p class="warn">{escape(title)}: {escape(str(path))} ({escape(why)})</p></figure>\n'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:{mime};base64,{data}" alt="{escape(title)}">'
            f'<figcaption>{escape(title)} <span class="dim">({escape(path.name)})</span></figcaption></figure>\n')


def _anchor(title: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"
    anchor, i = base, 2
    while anchor in used:
        anchor, i = f"{base}-{i}", i + 1
    used.add(anchor)
    return anchor


def _meta(report: dict[str, Any], version: str, command: str | None) -> str:
    from dsc.provenance import now

    created = str(report.get("created") or now())   # a quality-only report has no date of its own
    items = [f'<time datetime="{escape(created)}">{escape(created.replace("T", " ").replace("+00:00", " UTC"))}'
             "</time>" if created else "", f"dsc {escape(version)}"]
    configs = report.get("configurations") or []
    if configs:
        n_runs = sum(len(c.get("runs", [])) for c in configs)
        items.append(f"{len(configs)} configurations, {n_runs} runs")
    if report.get("baseline"):
        items.append(f"baseline {escape(report['baseline'])}")
    if report.get("primary_metric") and configs:
        items.append(f"primary metric {escape(report['primary_metric'])}")
    line = '<p class="meta">' + " · ".join(i for i in items if i) + "</p>\n"
    if command:
        line += f'<p class="meta">command: <code>{escape(command)}</code></p>\n'
    return line


def to_html(sections: list[Section], warnings: list[str] | None = None, title: str = "dsc report", *,
            report: dict[str, Any] | None = None, runs: Sequence[Any] = (), figures: Sequence[Figure] = (),
            command: str | None = None) -> str:
    """The whole document. ``report``: the JSON report (date, inputs, baseline); ``runs``: the Run objects
    (their run.json inputs); ``figures``: (title, picture path) pairs to embed, in order."""
    from dsc import __version__
    from dsc.report.inputs import inputs_section, runs_section

    report = report or {}
    used: set[str] = set()
    found = next((s for s in sections if s.title.startswith("Findings")), None)
    head = [f"<h1>{escape(title)}</h1>\n", _meta(report, __version__, command)]
    inputs, run_list = inputs_section(report, runs), runs_section(report, runs)
    if inputs is not None:
        head.append(table_html(inputs, _anchor(inputs.title, used)))
    if run_list is not None:
        head.append(f"<details><summary>{len(run_list.rows)} run directories</summary>\n"
                    + table_html(run_list, _anchor(run_list.title, used)) + "</details>\n")
    main, toc = [], []
    if warnings:
        main.append('<section id="warnings" class="warnings" role="note"><h2>Warnings</h2><ul>'
                    + "".join(f"<li>{_text(w)}</li>" for w in warnings) + "</ul></section>\n")
    if found is not None:
        toc.append((_anchor(found.title, used), "Findings"))
        main.append(findings_html(found, toc[-1][0]))
    for s in sections:
        if s is not found:
            toc.append((_anchor(s.title, used), s.title))
            main.append(table_html(s, toc[-1][0]))
    if figures:
        toc.append((_anchor("figures", used), "Figures"))
        main.append(f'<section id="{toc[-1][0]}" class="figures"><h2>Figures</h2>\n'
                    + "".join(figure_html(t, p) for t, p in figures) + "</section>\n")
    nav = ('<nav aria-label="Contents"><ul>' + "".join(f'<li><a href="#{a}">{escape(t)}</a></li>' for a, t in toc)
           + "</ul></nav>\n") if len(toc) > 1 else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="color-scheme" content="light dark">\n'
            f'<meta name="generator" content="dsc {escape(__version__)}">\n'
            f"<title>{escape(title)}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n"
            f"<header>\n{''.join(head)}</header>\n{nav}<main>\n{''.join(main)}</main>\n</body>\n</html>\n")
