"""Labelled image grids (``dsc augment --preview``, ``dsc invert --validation-grids``): every tile shows
its image at full resolution (or larger, for small images) under a label at 8 pt or more, e.g.
``gear / strength 0.50 / seed 1234``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsc.report.figures.style import DPI, figure_style, save_figure, wrap

MIN_TILE_IN = 1.8      # inches: a 19-digit seed at 8 pt fits on one line, with a gap to the next
LABEL_PT = 8
LINE_IN = 0.16         # height of one 8-pt label line in inches (with leading)


@dataclass
class Tile:
    """One image and its label (lines separated by newlines)."""

    image: np.ndarray     # (h, w, 3) uint8
    label: str


def tile_label(class_name: str, what: str, seed: int | None = None) -> str:
    """The three lines of a tile: the class, what the image is (``real image, row 17``, ``strength 0.50``,
    ``text-to-image``) and its seed when generated."""
    return "\n".join([class_name, what] + ([f"seed {seed}"] if seed is not None else []))


def tile_figure(rows: Sequence[Sequence[Tile]], *, title: str | None = None) -> Any:
    """A grid of labelled tiles, one row per entry of ``rows`` (a Figure, not saved)."""
    rows = [list(r) for r in rows if len(r)]
    if not rows:
        raise ValueError("a tile grid needs at least one image")
    ncols = max(len(r) for r in rows)
    res = max(max(t.image.shape[:2]) for r in rows for t in r)
    tile_in = max(res / DPI, MIN_TILE_IN)
    chars = int(tile_in / 0.068)               # characters of an 8-pt line that fit a tile
    labels = [[wrap(t.label, chars) for t in r] for r in rows]
    lines = max(lb.count("\n") + 1 for r in labels for lb in r)
    row_in = tile_in + lines * LINE_IN + 0.12
    with figure_style() as plt:
        fig, axes = plt.subplots(len(rows), ncols, squeeze=False,
                                 figsize=(ncols * (tile_in + 0.08), len(rows) * row_in + (0.35 if title else 0)),
                                 layout="constrained")
        fig.get_layout_engine().set(h_pad=0.03, w_pad=0.03, hspace=0.01, wspace=0.01)
        for i, row in enumerate(rows):
            for j in range(ncols):
                ax = axes[i, j]
                ax.set_axis_off()
                if j >= len(row):
                    continue
                ax.imshow(np.asarray(row[j].image), interpolation="nearest" if res < 128 else "antialiased")
                ax.set_title(labels[i][j], fontsize=LABEL_PT, loc="center", pad=3, linespacing=1.15)
        if title:
            fig.suptitle(wrap(title, int(ncols * tile_in / 0.085)), fontsize=10)
    return fig


def write_tile_grid(path: Path, rows: Sequence[Sequence[Tile]], *, title: str | None = None) -> Path:
    """Draw the grid and write it to ``path`` (PNG, PDF or SVG by its suffix)."""
    return save_figure(tile_figure(rows, title=title), path)
