"""Training curves in the terminal: one unicode sparkline per run for the loss and the validation
accuracy (kNN top-1 for pretraining, top-1 for the baseline), read from metrics.jsonl."""

from __future__ import annotations

import math
from typing import Any

from dsc.report.runs import Run
from dsc.report.table import Cell, Section

BARS = "▁▂▃▄▅▆▇█"
VAL_KEYS = ("val_knn_top1", "val_top1")
COLLAPSED_COS = 0.95  # as dsc.train.pretrain.COLLAPSED_COS (not imported: the report does not import torch)


def sparkline(values: list[float], width: int = 40) -> str:
    """Values scaled between their min and max onto eight bar heights; resampled to ``width`` points."""
    vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not vals:
        return ""
    if len(vals) > width:
        step = len(vals) / width
        vals = [vals[min(len(vals) - 1, int(i * step))] for i in range(width - 1)] + [vals[-1]]
    lo, hi = min(vals), max(vals)
    if hi == lo:
        return BARS[3] * len(vals)
    return "".join(BARS[min(7, int((v - lo) / (hi - lo) * 8))] for v in vals)


def run_curves(run: Run) -> dict[str, Any]:
    """{"epochs", "loss": [...], "val": [...], "val_key"} from a run's metrics.jsonl."""
    rows = run.history
    val_key = next((k for k in VAL_KEYS if any(k in r for r in rows)), None)
    loss = [float(r["loss"]) for r in rows if isinstance(r.get("loss"), (int, float))]
    val = [float(r[val_key]) for r in rows if val_key and isinstance(r.get(val_key), (int, float))]
    last_cos = next((r["proj_cos"] for r in reversed(rows) if isinstance(r.get("proj_cos"), (int, float))), None)
    return {"epochs": len(rows), "loss": loss, "val": val, "val_key": val_key,
            "collapsed": last_cos is not None and last_cos > COLLAPSED_COS}


def curves_section(runs: list[Run], width: int = 30) -> Section | None:
    """A table with one row per run that has a metrics.jsonl."""
    collapsed = False
    section = Section("Training curves (metrics.jsonl)",
                      ["run", "epochs", "loss first → last", "loss", "val acc % (kNN or top-1)",
                       "val best (epoch)"], right={1})
    for run in runs:
        c = run_curves(run)
        if not c["epochs"]:
            continue
        loss_txt = f"{c['loss'][0]:.3f} → {c['loss'][-1]:.3f}" if c["loss"] else "–"
        if c["collapsed"]:
            loss_txt += " collapsed"
            collapsed = True
        if c["val"]:
            best = max(range(len(c["val"])), key=c["val"].__getitem__)
            val_best = f"{100 * c['val'][best]:.1f} ({best + 1})"
        else:
            val_best = "–"
        unfinished = not run.progress.finished or run.training_problem is not None
        section.rows.append([Cell(run.name + (" (incomplete)" if unfinished else ""), "warn" if unfinished else None),
                             Cell(str(c["epochs"])), Cell(loss_txt, "bad" if c["collapsed"] else None),
                             Cell(sparkline(c["loss"], width)), Cell(sparkline(c["val"], width), "good"),
                             Cell(val_best)])
    if not section.rows:
        return None
    if collapsed:
        section.notes.append("collapsed: the run's projections ended at one point (mean cosine > 0.95), so its "
                             "encoder did not learn; see docs/training.md, 'Collapse'.")
    section.notes.append("sparklines scaled per run between its min and max; one bar per epoch "
                         f"(resampled to {width} when longer).")
    return section
