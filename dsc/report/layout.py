"""Fitting the report's tables (``dsc.report.table.Section``) to a terminal width without cutting a figure.

Every cell becomes a list of tokens that are never broken: the ``parts`` of a number cell (``66.3`` and
``± 2.6``; a delta, its interval, its status) or the words of a text cell (long words such as paths and
configuration names also break after ``/``, ``+``, ``,`` and before ``[``). A column may be as narrow as its
widest token. When the table is too wide, the widest columns are wrapped first (so ``± std`` goes under
the mean); when even the narrowest layout is too wide, the table is split into parts that each repeat the
key column, the first part holding the section's ``keep`` columns (the primary metric and Δ); and columns
headed by configuration names are numbered (``C1``, ``C2``, ... with a legend) when that saves a part.
Cells are drawn as rich ``Text`` (never markup), so ``ce/none[timm:test_resnet]`` shows as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dsc.report.table import STYLES, Cell, Section

#: Words longer than this are also broken after / + , ; and before [ ( (paths, configuration names).
LONG_WORD = 16
#: The key column (configuration names) is kept on one line up to this width when a table is split.
KEY_WIDTH = 26
_SPLIT = re.compile(r"(?<=[/+,;])|(?=[\[(])")


def tokens(text: str, parts: tuple[str, ...] = ()) -> list[str]:
    """Unbreakable pieces, each with the separator that follows it (joined they give ``text``)."""
    if parts:
        return [p + " " for p in parts[:-1]] + [parts[-1]]
    out = []
    for word in re.findall(r"\S+\s*", text):
        out += [t for t in _SPLIT.split(word) if t] if len(word.rstrip()) > LONG_WORD else [word]
    return out or [""]


def wrap(toks: list[str], width: int) -> list[str]:
    """Greedy line filling at token boundaries (a token wider than ``width`` gets a line of its own)."""
    lines, cur = [], ""
    for t in toks:
        if cur and len((cur + t).rstrip()) > width:
            lines.append(cur.rstrip())
            cur = t
        else:
            cur += t
    lines.append(cur.rstrip())
    return lines


def _cell_tokens(cell: Cell) -> list[str]:
    parts = cell.parts if cell.parts and " ".join(cell.parts) == cell.text else ()
    return tokens(cell.text, parts)


@dataclass
class Column:
    """One column's header and cells as tokens, and the width range they allow."""

    header: list[str]
    cells: list[list[str]]

    @property
    def least(self) -> int:
        return max(len(t.rstrip()) for toks in [self.header, *self.cells] for t in toks)

    @property
    def most(self) -> int:
        return max(len("".join(toks).rstrip()) for toks in [self.header, *self.cells])

    @property
    def comfort(self) -> int:
        """The width it needs wrapped at about half its natural width (mean over ± std, two-line text)."""
        return self.used(max(self.least, -(-self.most // 2)))

    def used(self, width: int) -> int:
        """The widest line when wrapped at ``width``."""
        return max(len(line) for toks in [self.header, *self.cells] for line in wrap(toks, width))


def overhead(n: int) -> int:
    """Characters a SIMPLE_HEAVY table without edges adds to its column widths: padding and dividers."""
    return 3 * n - 1


def fit_widths(cols: list[Column], width: int, weights: list[float] | None = None,
               firm: list[int] | None = None) -> list[int]:
    """Column widths whose sum fits ``width`` (less the overhead), wrapping first the column with the largest
    width x weight (text before numbers before the key and kept columns), first down to the ``firm``
    widths, then down to each column's widest token (never below: then the result is wider than ``width``)."""
    widths = [c.most for c in cols]
    weights = weights or [1.0] * len(cols)
    avail = width - overhead(len(cols))
    for floors in (firm or [c.least for c in cols], [c.least for c in cols]):   # firm floors first
        while sum(widths) > avail:
            shrinkable = [i for i, c in enumerate(cols) if widths[i] > max(c.least, floors[i])]
            if not shrinkable:
                break
            i = max(shrinkable, key=lambda k: (widths[k] * weights[k], k))
            widths[i] = max(cols[i].least, cols[i].used(widths[i] - 1))
    return widths


def _weight(section: Section, j: int) -> float:
    """How readily column ``j`` wraps: free text 1, numbers 0.6, the key 0.4, kept columns 0.3."""
    if j in section.keep:
        return 0.3
    if j == section.key:
        return 0.4
    return 0.6 if j in section.right else 1.0


def _firm(cols: list[Column], key: int | None, i: int) -> int:
    """The width column ``i`` is counted at when a table is split: the key up to KEY_WIDTH wide (a typical
    configuration name on one line), others at about half their natural width."""
    c = cols[i]
    return c.used(max(c.least, min(c.most, KEY_WIDTH))) if i == key else c.comfort


def split(cols: list[Column], key: int | None, keep: list[int], width: int) -> list[list[int]]:
    """Column indices of each part: the first holds the key and ``keep`` columns, every part the key."""
    head = [key] if key is not None else []

    def fits(idx: list[int]) -> bool:   # a column joins a part only if it fits at about half its width
        return sum(_firm(cols, key, i) for i in idx) + overhead(len(idx)) <= width

    rest = [i for i in range(len(cols)) if i != key and i not in keep]
    pieces, first = [], head + [i for i in keep if i != key]
    while True:
        piece = list(first)
        for i in list(rest):
            if fits(piece + [i]) or len(piece) == len(head):
                piece.append(i)
                rest.remove(i)
        pieces.append(sorted(piece))
        if not rest:
            return pieces
        first = list(head)


def _columns(section: Section) -> list[Column]:
    return [Column(tokens(h), [_cell_tokens(row[j]) if j < len(row) else [""] for row in section.rows])
            for j, h in enumerate(section.columns)]


def aliased(section: Section) -> tuple[Section, str]:
    """The section with its ``alias_headers`` (configuration names) numbered C1, C2, ... and the legend."""
    names = {j: f"C{k + 1}" for k, j in enumerate(sorted(section.alias_headers))}
    columns = [names.get(j, c) for j, c in enumerate(section.columns)]
    legend = "; ".join(f"{names[j]}: {section.columns[j]}" for j in sorted(names))
    return replace(section, columns=columns, alias_headers=set()), legend


def layout(section: Section, width: int) -> tuple[Section, list[tuple[list[int], list[int]]], str]:
    """(the section to draw, [(column indices, widths)] per part, legend or "")."""
    legend = ""
    cols = _columns(section)
    key = section.key if section.key is not None and section.key < len(cols) else None
    keep = [j for j in sorted(section.keep) if j < len(cols)]
    pieces = split(cols, key, keep, width)
    if len(pieces) > 1 and section.alias_headers:
        short, text = aliased(section)
        short_cols = _columns(short)
        short_pieces = split(short_cols, key, keep, width)
        if len(short_pieces) < len(pieces):
            section, cols, pieces, legend = short, short_cols, short_pieces, text
    plan = []
    for p in pieces:
        firm = [_firm(cols, key, i) if i == key or i in keep else cols[i].least for i in p]
        plan.append((p, fit_widths([cols[i] for i in p], width, [_weight(section, i) for i in p], firm)))
    return section, plan, legend


def _lines(text: str, parts: tuple[str, ...], width: int) -> str:
    return "\n".join(wrap(tokens(text, parts if parts and " ".join(parts) == text else ()), width))


def to_rich_tables(section: Section, width: int) -> tuple[list[Table], list[str]]:
    """The section as one or more rich tables that fit ``width`` columns, and its notes (legend first)."""
    drawn, plan, legend = layout(section, width)
    tables = []
    for k, (idx, widths) in enumerate(plan):
        title = drawn.title + (f" ({k + 1} of {len(plan)})" if len(plan) > 1 else "")
        table = Table(title=Text(title, style="bold"), box=box.SIMPLE_HEAVY, title_justify="left",
                      show_edge=False, pad_edge=True)
        for j, w in zip(idx, widths, strict=True):
            table.add_column(Text(_lines(drawn.columns[j], (), w)), width=w, no_wrap=False, overflow="fold",
                             justify="right" if j in drawn.right else "left")
        for row in drawn.rows:
            table.add_row(*[Text(_lines(row[j].text, row[j].parts, w), style=STYLES.get(row[j].style, ""))
                            if j < len(row) else Text("") for j, w in zip(idx, widths, strict=True)])
        tables.append(table)
    notes = ([f"Configurations: {legend}."] if legend else []) + list(drawn.notes)
    return tables, notes


def render_section(section: Section, console: Console, width: int | None = None) -> None:
    """Print the section's tables and its notes (wrapped at word boundaries) on ``console``."""
    width = width or console.width
    tables, notes = to_rich_tables(section, width)
    for k, t in enumerate(tables):
        if k:
            console.print()
        # wider than ``width`` only when one token and the key column cannot fit: then lines run long
        # (the terminal wraps them) rather than rich squeezing a column and cutting its figures
        need = sum(c.width or 0 for c in t.columns) + overhead(len(t.columns))
        console.print(t, soft_wrap=False, width=max(width, need), crop=False)
    for n in notes:
        console.print(Text(n, style="dim"), soft_wrap=False, width=width)
    console.print()
