"""Caveats the report attaches to what it compares, so unfinished and questionable inputs stay visible:

- runs whose training did not finish but that have metrics anyway (``dsc probe --allow-incomplete``): their
  configuration is renamed ``NAME (incomplete)`` in every table, with a note and a warning;
- OOD negatives that a real-data classifier still puts in their source class (label noise), from the
  quality assessment or from the stores' own ``--max-source-confidence`` filter records;
- a synthetic-OOD AUROC measured on an evaluation-only store made by the same model and strategy as the
  run's training negatives: optimistic, since training saw that generator's artefacts as negatives; the
  held-out-class AUROC is the fair measure.
"""

from __future__ import annotations

import logging

from dsc.report.group import Group

log = logging.getLogger(__name__)

INCOMPLETE = " (incomplete)"
#: Above this share of OOD images still put in their source class, the negatives are called label noise.
LABEL_NOISE_SHARE = 0.30


# ------------------------------------------------------------------------------------------ incomplete
def mark_incomplete(groups: list[Group]) -> list[str]:
    """Rename each configuration holding a run whose training did not finish to ``NAME (incomplete)``, add
    a note naming the runs, and return one warning per such run (call after the baseline is found)."""
    warnings = []
    for g in groups:
        problems = [(r, r.training_problem) for r in g.runs]
        problems = [(r, p) for r, p in problems if p]
        if not problems:
            continue
        g.name += INCOMPLETE
        for run, problem in problems:
            g.notes.append(f"run {run.name} is incomplete: {problem}")
            warnings.append(f"{run.path}: {problem}; configuration {g.name} includes it")
    return warnings
