"""What every dsc figure shares: the file format from the suffix, the resolution, font sizes, the
colour-blind safe palette, label wrapping and the atomic write."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dsc.errors import InputError

#: Suffix -> matplotlib format. Anything else is refused before any work starts.
FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
#: Resolution of raster output (PNG) and of images embedded in PDF/SVG; at least 150 everywhere.
DPI = 200
#: The smallest font size any text of a figure may have, in points at the figure's printed size.
MIN_FONT_PT = 8.0
#: Okabe & Ito (2008), colour-blind safe; black first, then the seven colours used for categories.
OKABE_ITO = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
#: The seven Okabe-Ito colours without black, in an order where neighbours differ strongly.
CATEGORY_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
#: Sequential colour map (perceptually uniform, readable with colour-vision deficiency and in grey).
SEQUENTIAL_CMAP = "cividis"

_RC = {
    "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "legend.fontsize": 8, "legend.title_fontsize": 8, "figure.titlesize": 10, "figure.dpi": DPI,
    "savefig.dpi": DPI, "pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none",
    "axes.prop_cycle": None,   # filled in by figure_style (needs matplotlib's cycler)
    "image.cmap": SEQUENTIAL_CMAP, "axes.spines.top": False, "axes.spines.right": False,
}


def figure_format(path: Path) -> str:
    """The format a figure path asks for: png, pdf or svg (by its suffix; InputError otherwise)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"cannot write a figure as {Path(path).name!r}: unknown file type {suffix or '(none)'}",
                         hint="name it .png (default), .pdf or .svg")
    return FORMATS[suffix]


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def figure_style() -> Iterator[Any]:
    """Within: dsc's figure defaults (fonts >= 8 pt, Okabe-Ito colour cycle, cividis maps). Yields pyplot."""
    plt = pyplot()
    from cycler import cycler

    with plt.rc_context({**_RC, "axes.prop_cycle": cycler(color=list(CATEGORY_COLOURS))}):
        yield plt


def wrap(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters: at spaces, else after ``_ - / +``
    (``brake_caliper_front_left``), else anywhere; existing line breaks are kept."""
    width = max(4, int(width))
    lines: list[str] = []
    for para in str(text).split("\n"):
        line = ""
        for piece in re.split(r"(?<=[ _/+-])", para):
            while len(piece.rstrip()) > width:                    # one word longer than a line
                if line.strip():
                    lines.append(line.rstrip())
                    line = ""
                lines.append(piece[:width])
                piece = piece[width:]
            if len((line + piece).rstrip()) > width and line.strip():
                lines.append(line.rstrip())
                line = piece.lstrip()
            else:
                line += piece
        lines.append(line.rstrip())
    return "\n".join(lines)


def wrap_lines(text: str, width: int, max_lines: int) -> str:
    """``wrap`` cut to ``max_lines`` lines, the last ending in "…" when text was left out."""
    lines = wrap(text, width).split("\n")
    if len(lines) <= max_lines:
        return "\n".join(lines)
    kept = lines[:max_lines]
    kept[-1] = kept[-1][:max(1, width - 1)].rstrip() + "…"
    return "\n".join(kept)


def save_figure(fig: Any, path: Path) -> Path:
    """Write ``fig`` to ``path`` atomically in the format of its suffix (PNG at ``DPI``), then close it."""
    from dsc.outputs import atomic_write_bytes

    path = Path(path)
    fmt = figure_format(path)
    plt = pyplot()
    buf = io.BytesIO()
    # no creation date in PDF/SVG: the same figure gives the same bytes
    metadata = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}.get(fmt)
    try:
        with plt.rc_context({k: _RC[k] for k in ("pdf.fonttype", "svg.fonttype")}):
            fig.savefig(buf, format=fmt, dpi=DPI, bbox_inches="tight", pad_inches=0.05, metadata=metadata)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def small_texts(fig: Any, minimum: float = MIN_FONT_PT) -> list[tuple[str, float]]:
    """(text, size) of every visible, non-empty text of ``fig`` smaller than ``minimum`` points."""
    from matplotlib.text import Text

    return [(t.get_text(), t.get_fontsize()) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and t.get_fontsize() < minimum - 1e-9]
