"""``--per-class``: per-class test accuracy of every configuration side by side, and the class pairs each
configuration confuses most (from the summed confusion matrices of its seeds)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dsc.report import stats
from dsc.report.group import Group
from dsc.report.table import Cell, Section, pct


def per_class_data(groups: list[Group], top_k: int = 5) -> dict[str, Any]:
    """{"classes": [...], "accuracy": {config: {class: mean}}, "confused": {config: [pairs]}}."""
    classes: list[str] = []
    for g in groups:
        for r in g.runs:
            for c in (r.metrics or {}).get("classes") or []:
                if c not in classes:
                    classes.append(c)
    accuracy: dict[str, dict[str, float]] = {}
    confused: dict[str, list[dict[str, Any]]] = {}
    for g in groups:
        per: dict[str, list[float]] = {}
        total: np.ndarray | None = None
        names: list[str] | None = None
        for r in g.runs:
            test = (r.metrics or {}).get("test") or {}
            for c, v in (test.get("per_class") or {}).items():
                if isinstance(v, (int, float)):
                    per.setdefault(c, []).append(float(v))
            conf = test.get("confusion")
            run_classes = (r.metrics or {}).get("classes") or []
            if conf is not None:
                m = np.asarray(conf, dtype=np.float64)
                if m.ndim == 2 and m.shape[0] == m.shape[1]:
                    if total is None:
                        total, names = m.copy(), list(run_classes) or [str(i) for i in range(len(m))]
                    elif total.shape == m.shape:
                        total += m
        accuracy[g.name] = {c: stats.mean(v) for c, v in per.items()}
        pairs = []
        if total is not None and names is not None:
            off = total.copy()
            np.fill_diagonal(off, 0)
            row_sums = total.sum(axis=1)
            order = np.argsort(-off, axis=None, kind="stable")
            for flat in order[:top_k]:
                i, j = np.unravel_index(flat, off.shape)
                if off[i, j] <= 0:
                    break
                pairs.append({"true": names[i] if i < len(names) else str(i),
                              "predicted": names[j] if j < len(names) else str(j),
                              "count": int(off[i, j]),
                              "share": float(off[i, j] / row_sums[i]) if row_sums[i] else 0.0})
        confused[g.name] = pairs
    return {"classes": classes, "accuracy": accuracy, "confused": confused}


def per_class_sections(data: dict[str, Any]) -> list[Section]:
    names = list(data["accuracy"])
    acc = Section("Per-class test accuracy % (mean over seeds)", ["class", *names],
                  right=set(range(1, len(names) + 1)), alias_headers=set(range(1, len(names) + 1)))
    for c in data["classes"]:
        vals = [data["accuracy"][n].get(c) for n in names]
        present = [v for v in vals if v is not None]
        top = max(present) if len(present) > 1 else None
        acc.rows.append([Cell(c)] + [Cell(pct(v), "best" if top is not None and v == top else None)
                                     for v in vals])
    conf = Section("Most confused class pairs (summed over seeds)",
                   ["configuration", "true class", "predicted as", "count", "share of class %"],
                   right={3, 4})
    for n in names:
        for p in data["confused"].get(n, []):
            conf.rows.append([Cell(n), Cell(p["true"]), Cell(p["predicted"]), Cell(str(p["count"])),
                              Cell(pct(p["share"]))])
    if not conf.rows:
        conf.notes.append("no confusion matrices with errors in these runs")
    return [acc, conf]
