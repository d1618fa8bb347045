"""Figures for papers: matplotlib (Agg backend), imported only when a figure is drawn.

Every figure is written by :func:`dsc.report.figures.style.save_figure`: PNG by default, PDF or SVG by
the file suffix, at ``DPI`` (200) with fonts of at least 8 pt at the figure's printed size and the
Okabe-Ito colour-blind safe palette (``cividis`` for maps).

- ``results``: per configuration the primary metric's mean with its t-interval, the seeds as dots, the
  baseline marked, and panels for corruption accuracy / OOD AUROC when the runs have them;
- ``confusion``: row-normalised confusion matrices in a grid (at most 3 per row), one shared colour bar;
- ``embedding``: 2-D PCA map of a run's test features, held-out classes and synthetic OOD marked;
- ``tiles``: labelled image grids (``dsc augment --preview``, ``dsc invert --validation-grids``).
"""
