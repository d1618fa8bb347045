"""Confusion matrices of the configurations in a grid (at most ``PER_ROW`` per row): each summed over
the configuration's seeds and normalised by row, every cell's percent of the true class written in it,
the number of test images and seeds under each title, one shared colour bar, long class names wrapped."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsc.errors import InputError
from dsc.report.figures.style import SEQUENTIAL_CMAP, figure_style, save_figure, wrap, wrap_lines

log = logging.getLogger(__name__)
PER_ROW = 3
MAX_PANELS = 9
CELL_IN = 0.34       # inches per matrix cell: a three-digit percent at 8 pt fits
NAME_CHARS = 22      # class names wrap at this many characters ...
NAME_LINES = 2       # ... onto at most this many lines (two 8-pt lines fit a cell's height)


@dataclass
class Panel:
    """One configuration's confusion matrix (counts summed over its seeds)."""

    name: str
    counts: np.ndarray
    classes: list[str]
    per_seed: list[int]     # test images of each seed's matrix

    @property
    def seeds(self) -> int:
        return len(self.per_seed)

    @property
    def n_text(self) -> str:
        """"n = 90 test images" (one seed), "n = 3 seeds × 90 test images", or "n = 181 over 2 seeds"."""
        if self.seeds == 1:
            return f"n = {self.per_seed[0]} test images"
        if len(set(self.per_seed)) == 1:
            return f"n = {self.seeds} seeds × {self.per_seed[0]} test images"
        return f"n = {sum(self.per_seed)} test images over {self.seeds} seeds"

    @property
    def shares(self) -> np.ndarray:
        """Each row divided by its total (the share of the true class predicted as each class)."""
        return self.counts / np.clip(self.counts.sum(1, keepdims=True), 1, None)


def panels_of(groups: list[Any], max_panels: int = MAX_PANELS) -> list[Panel]:
    """The confusion panel of each configuration with a test confusion matrix (the first ``max_panels``)."""
    panels = []
    for g in groups:
        total, names, per_seed = None, None, []
        for r in g.runs:
            m = ((r.metrics or {}).get("test") or {}).get("confusion")
            if m is None:
                continue
            m = np.asarray(m, dtype=np.float64)
            if total is None:
                total, names = m.copy(), (r.metrics or {}).get("classes") or [str(i) for i in range(len(m))]
            elif m.shape == total.shape:
                total += m
            else:
                continue
            per_seed.append(int(round(m.sum())))
        if total is not None:
            panels.append(Panel(g.name, total, [str(n) for n in names], per_seed))
    if not panels:
        raise InputError("no confusion matrices in these runs", hint="metrics.json test.confusion is missing")
    if len(panels) > max_panels:
        log.warning("confusion figure: %d configurations, drawing the first %d (%s left out)", len(panels),
                    max_panels, ", ".join(p.name for p in panels[max_panels:]))
    return panels[:max_panels]


def confusion_figure(groups: list[Any], max_panels: int = MAX_PANELS) -> Any:
    """The grid of confusion matrices as a matplotlib Figure (not saved)."""
    panels = panels_of(groups, max_panels)
    k = max(len(p.classes) for p in panels)
    ncols = min(PER_ROW, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    side = max(2.2, CELL_IN * k)
    label_in = 0.09 * min(NAME_CHARS, max(len(c) for p in panels for c in p.classes)) + 0.3
    title_chars = max(14, int(side / 0.075))   # 9-pt characters that fit over a panel
    width = ncols * (side + 0.35) + label_in + 1.0
    height = nrows * (side + label_in + 0.75)
    with figure_style() as plt:
        fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained")
        image = None
        for i, ax in enumerate(axes.ravel()):
            if i >= len(panels):
                ax.set_axis_off()
                continue
            p = panels[i]
            shares = p.shares
            image = ax.imshow(shares * 100, vmin=0, vmax=100, cmap=SEQUENTIAL_CMAP)
            ax.set_title(f"{wrap(p.name, title_chars)}\n{wrap(p.n_text, title_chars)}", fontsize=9)
            ticks = range(len(p.classes))
            names = [wrap_lines(c, NAME_CHARS, NAME_LINES) for c in p.classes]
            ax.set_xticks(ticks, names, rotation=90, fontsize=8)   # every row has room for them anyway
            ax.set_yticks(ticks, names if i % ncols == 0 else [""] * len(names), fontsize=8)
            ax.tick_params(length=0)
            ax.set_xlabel("predicted class")
            if i % ncols == 0:
                ax.set_ylabel("true class")
            for spine in ax.spines.values():
                spine.set_visible(False)
            for (t, q), v in np.ndenumerate(shares):
                ax.text(q, t, f"{100 * v:.0f}", ha="center", va="center", fontsize=8,
                        color="white" if v < 0.45 else "black")
        bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=min(1.0, 3.0 / height + 0.4),
                           aspect=30, pad=0.02)
        bar.set_label("% of the true class (summed over seeds)")
    return fig


def write_confusion_figure(path: Path, groups: list[Any], max_panels: int = MAX_PANELS) -> Path:
    """Draw the confusion grid of ``groups`` and write it to ``path`` (PNG, PDF or SVG by suffix)."""
    return save_figure(confusion_figure(groups, max_panels), path)
