"""Pictures of a report (matplotlib, Agg backend, imported only when a picture is asked for); each is
written as PNG, PDF or SVG by its file suffix (``dsc.report.figures.style``):

- ``results_png``: the results figure (primary metric per configuration: mean, interval, seeds);
- ``samples_grid``: per class, a few real train images | normal synthetic | OOD synthetic images;
- ``confusion_png``: the row-normalised confusion matrix of each configuration (summed over seeds), in a grid;
- ``embedding_map_png``: a 2-D PCA projection of a run's test features (``embeddings.h5``), coloured by
  class, held-out classes and synthetic OOD marked.

``figure_list`` gives what a report drew as (title, path) pairs, for exports that embed the figures.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dsc.errors import InputError
from dsc.report.figures.style import figure_format, figure_style, save_figure, wrap

log = logging.getLogger(__name__)

#: Titles of the figures, by the report key they are listed under (``report["figures"]``).
TITLES = {"results": "Results", "samples": "Real and synthetic samples", "confusion": "Confusion matrices",
          "embedding": "Embedding map"}


class FigureFile(NamedTuple):
    """A figure a report wrote: its title and path."""

    title: str
    path: Path


def figure_list(report: dict[str, Any]) -> list[FigureFile]:
    """The figures recorded in ``report["figures"]`` (by ``record_figure``), in the order they were drawn."""
    return [FigureFile(str(f["title"]), Path(f["path"])) for f in report.get("figures") or []]


def record_figure(report: dict[str, Any], kind: str, path: Path) -> Path:
    """Note a written figure in ``report["figures"]`` as {"kind", "title", "path"}; returns ``path``."""
    report.setdefault("figures", []).append({"kind": kind, "title": TITLES.get(kind, kind), "path": str(path)})
    return Path(path)


def results_png(path: Path, report: dict[str, Any]) -> Path:
    """The results figure of a report dict (see ``dsc.report.figures.results``)."""
    from dsc.report.figures.results import write_results_figure

    return write_results_figure(path, report)


def _tile(images: np.ndarray, k: int, size: int) -> np.ndarray:
    """k images side by side at size x size (blank where missing), with a 2-px gap."""
    from PIL import Image

    out = np.full((size, k * (size + 2), 3), 255, dtype=np.uint8)
    for i, im in enumerate(images[:k]):
        if im.shape[:2] != (size, size):
            im = np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))
        out[:, i * (size + 2):i * (size + 2) + size] = im
    return out


def samples_grid(path: Path, data_path: Path, synthetic_paths: list[Path], *, per_class: int = 4,
                 seed: int = 0, max_classes: int = 20) -> Path:
    """Rows: classes; column groups: real | normal synthetic | OOD synthetic (``per_class`` each)."""
    from dsc.store import open_store

    rng = np.random.default_rng(seed)
    data = open_store(data_path, kind="data")
    classes = data.classes[:max_classes]
    train = np.flatnonzero((data.split == "train") & (data.labels >= 0))
    syn = [open_store(p, kind="synthetic") for p in synthetic_paths]
    size = min(96, int(data.image_shape[0]) if data.image_shape else 64)

    def pick(store: Any, rows: np.ndarray) -> np.ndarray:
        if not len(rows):
            return np.empty((0, size, size, 3), np.uint8)
        rows = np.sort(rng.choice(rows, size=min(per_class, len(rows)), replace=False))
        return store.images(rows)

    strips = []
    for c, _name in enumerate(classes):
        real = pick(data, train[data.labels[train] == c])
        normal, ood = [], []
        for s in syn:
            src = s.row_classes
            flag = s.is_ood
            normal.append(pick(s, np.flatnonzero((src == c) & ~flag)))
            ood.append(pick(s, np.flatnonzero((src == c) & flag)))
        normal_im = np.concatenate(normal)[:per_class] if normal else np.empty((0, size, size, 3), np.uint8)
        ood_im = np.concatenate(ood)[:per_class] if ood else np.empty((0, size, size, 3), np.uint8)
        gap = np.full((size, 10, 3), 255, np.uint8)
        strips.append(np.concatenate([_tile(real, per_class, size), gap, _tile(normal_im, per_class, size), gap,
                                      _tile(ood_im, per_class, size)], axis=1))
    if not strips:
        raise InputError(f"{data_path} has no classes to show")
    width = strips[0].shape[1]
    fig_w = 3 * per_class * 0.8
    with figure_style() as plt:
        fig, axes = plt.subplots(len(strips), 1, figsize=(fig_w + 1.2, fig_w * size / width * len(strips) * 1.1
                                                          + 0.6), squeeze=False, layout="constrained")
        for ax, strip, name in zip(axes[:, 0], strips, classes, strict=False):
            ax.imshow(strip)
            ax.set_yticks([])
            ax.set_xticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.set_ylabel(wrap(name, 16), rotation=0, ha="right", va="center", fontsize=9)
        for j, title in enumerate(("real", "normal synthetic", "OOD synthetic")):
            axes[0, 0].text((j + 0.5) / 3, 1.04, title, ha="center", va="bottom", fontsize=10,
                            transform=axes[0, 0].transAxes)
    return save_figure(fig, path)


def confusion_png(path: Path, groups: list[Any], max_groups: int = 9) -> Path:
    """Row-normalised confusion matrices in a grid, one panel per configuration (summed over its seeds)."""
    from dsc.report.figures.confusion import write_confusion_figure

    return write_confusion_figure(path, groups, max_groups)


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Projection on the first two principal components (sign fixed: largest loading positive)."""
    from dsc.report.figures.embedding import pca

    return pca(x)[0]


def embedding_map_png(path: Path, runs: list[Any], seed: int = 0, max_points: int = 5000,
                      choice: str | None = None) -> Path:
    """PCA map of the run ``choice`` (a run directory or name), else the first run that has embeddings.h5."""
    from dsc.report.figures.embedding import write_embedding_figure

    return write_embedding_figure(path, runs, choice=choice, seed=seed, max_points=max_points)


def check_report_outputs(figures: Sequence[Path | None], markdown: Path | None, html: Path | None, *,
                         force: bool) -> None:
    """Before any work (``dsc report``, ``dsc study``, their verbs): refuse figure paths whose suffix is not
    .png, .pdf or .svg, then check every output path (Markdown, HTML, the figures) as ``check_output`` does."""
    from dsc.outputs import check_output

    for path in figures:
        if path is not None:
            figure_format(path)
    for path in (markdown, html, *figures):
        if path is not None:
            check_output(Path(path), force=force)


def draw_figures(report: dict[str, Any], result: Any, *, results: Path | None = None, samples: Path | None = None,
                 confusion: Path | None = None, embedding_map: Path | None = None, embedding_run: str | None = None,
                 data: Path | None = None, synthetic: list[Path] | None = None, seed: int = 0) -> list[Path]:
    """Draw the figures asked for (``result``: the ReportResult of the runs, or None), record each in
    ``report["figures"]`` (see ``figure_list``) and return their paths in the order drawn."""
    runs_needed = {"--results-figure": results, "--confusion": confusion, "--embedding-map": embedding_map}
    for option, path in runs_needed.items():
        if path is not None and (result is None or not result.groups):
            raise InputError(f"{option} needs complete runs", hint="give run directories with metrics")
    if embedding_run is not None and embedding_map is None:
        raise InputError("--embedding-run chooses the run of --embedding-map", hint="add --embedding-map map.png")
    if results is not None:
        record_figure(report, "results", results_png(results, report))
    if samples is not None:
        if data is None:
            raise InputError("--samples needs the real images", hint="add --data DATA.h5")
        record_figure(report, "samples", samples_grid(samples, data, list(synthetic or []), seed=seed))
    if confusion is not None:
        record_figure(report, "confusion", confusion_png(confusion, result.groups))
    if embedding_map is not None:
        record_figure(report, "embedding", embedding_map_png(embedding_map, result.runs, seed=seed,
                                                             choice=embedding_run))
    return [f.path for f in figure_list(report)]
