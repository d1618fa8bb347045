"""How much training each compared run got: optimizer steps, images drawn into batches and passes over the
positives (run.json, written by ``dsc pretrain`` / ``dsc baseline``; for older runs the steps of the last
``metrics.jsonl`` row), per configuration, and a warning when configurations the report compares differ by
more than 5 % (docs/training.md#training-budget).

An arm with more training images gets more optimizer steps under an epochs budget, so a difference between
arms may come from the extra training rather than from the data: the most common objection to
generative-augmentation results. Compared pairs: every configuration against the report's baseline and
against its own method's ``none`` configuration. For SupCon runs the numbers are the pre-training's (the
probe trains only a linear layer, identically for every arm).
"""

from __future__ import annotations

import logging
from typing import Any

from dsc.report.group import Group, cell_reference
from dsc.report.runs import Run
from dsc.report.table import Cell, Section

log = logging.getLogger(__name__)

#: Relative difference in steps or images above which compared configurations are called unequal.
TOLERANCE = 0.05
QUANTITIES = (("optimizer_steps", "optimizer steps"), ("images_seen", "images seen"))


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def run_budget(run: Run) -> dict[str, Any]:
    """The budget a run planned and the training it did (None where the run does not say)."""
    info, last = run.info, (run.history[-1] if run.history else {})
    plan = info.get("budget") if isinstance(info.get("budget"), dict) else {}
    kind, value = plan.get("kind"), plan.get("value")
    if kind is None and _int(run.settings.get("epochs")) is not None:
        kind, value = "epochs", run.settings["epochs"]
    passes = info.get("passes")
    return {"optimizer_steps": _int(info.get("optimizer_steps")) or _int(last.get("step")),
            "images_seen": _int(info.get("images_seen")) or _int(last.get("images_seen")),
            "passes": passes if isinstance(passes, (int, float)) else None,
            "budget": f"{value} {kind}" if kind is not None and value is not None else None}


def _mean(values: list[int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known and len(known) == len(values) else None


def _span(values: list[Any], fmt=str) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "–"
    lo, hi = min(known), max(known)
    text = fmt(lo) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"
    return text + (" (some unknown)" if len(known) < len(values) else "")


def _pairs(report: dict[str, Any], groups: list[Group]) -> list[tuple[Group, Group]]:
    """(configuration, reference) pairs the report compares: each against the baseline and its method's none."""
    by_name = {g.name: g for g in groups}
    base = by_name.get(report.get("baseline") or "")
    nones = {(g.method, g.examples_per_class): g for g in groups if g.synthetic.get("label") == "none"}
    pairs: list[tuple[Group, Group]] = []
    for g in groups:   # in a few-shot sweep, within g's cell
        for ref in (cell_reference(base, g, groups), nones.get((g.method, g.examples_per_class))):
            if ref is not None and ref is not g and (g, ref) not in pairs:
                pairs.append((g, ref))
    return pairs


def compare_budgets(report: dict[str, Any], groups: list[Group]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Per configuration: its runs' budgets and means; and every compared pair that differs by > TOLERANCE."""
    configs: dict[str, Any] = {}
    for g in groups:
        runs = {r.name: run_budget(r) for r in g.runs}
        configs[g.name] = {"runs": runs, **{q: _mean([b[q] for b in runs.values()]) for q, _ in QUANTITIES}}
    unequal = []
    for g, ref in _pairs(report, groups):
        a, b = configs[g.name], configs[ref.name]
        diffs = {q: {"value": a[q], "reference": b[q], "ratio": round(a[q] / b[q], 4)} for q, _ in QUANTITIES
                 if a[q] is not None and b[q] and abs(a[q] / b[q] - 1) > TOLERANCE}
        if diffs:
            unequal.append({"configuration": g.name, "reference": ref.name, **diffs})
    return configs, unequal


def _message(d: dict[str, Any]) -> str:
    parts = [f"{d[q]['ratio']:.2f}x the {label} ({d[q]['value']:.0f} vs {d[q]['reference']:.0f} per run)"
             for q, label in QUANTITIES if q in d]
    return (f"{d['configuration']} trained {' and '.join(parts)} of {d['reference']}: a difference between them "
            "may come from the amount of training, not the data; give every arm the same budget (`dsc study` "
            "does by default; --steps or --images for single runs) or pass --allow-unequal-budget")


def budget_section(report: dict[str, Any], groups: list[Group], *, allow_unequal: bool = False
                   ) -> Section | None:
    """The "Training budget" table; adds ``report["budget"]`` and, unless ``allow_unequal``, a warning per
    unequal pair to ``report["warnings"]``. None when no compared run says how long it trained."""
    configs, unequal = compare_budgets(report, groups)
    per_run = [b for c in configs.values() for b in c["runs"].values()]
    if not any(b["optimizer_steps"] is not None or b["images_seen"] is not None for b in per_run):
        return None
    report["budget"] = {"tolerance": TOLERANCE, "allowed_unequal": allow_unequal, "configurations": configs,
                        "unequal": unequal}
    flagged = {(d["configuration"], q) for d in unequal for q, _ in QUANTITIES if q in d}
    s = Section("Training budget", ["configuration", "budget", "optimizer steps per run", "images seen per run",
                                    "passes over the positives"], right={2, 3, 4})
    for g in groups:
        runs = list(configs[g.name]["runs"].values())
        cells = [Cell(g.name), Cell(_span([b["budget"] for b in runs]), "dim")]
        for q, _ in QUANTITIES:
            cells.append(Cell(_span([b[q] for b in runs]), "warn" if (g.name, q) in flagged else None))
        cells.append(Cell(_span([b["passes"] for b in runs], lambda x: f"{x:.2f}")))
        s.rows.append(cells)
    s.notes.append("Per run, from run.json: optimizer steps, images drawn into batches (real, synthetic and "
                   "negative; a SupCon image counts once for its two views), passes over the positives; for "
                   "SupCon the pre-training (the probe trains the same linear layer for every arm).")
    if unequal and allow_unequal:
        s.notes.append(f"{len(unequal)} compared pair(s) differ by more than {TOLERANCE:.0%} in steps or images; "
                       "allowed with --allow-unequal-budget.")
    elif unequal:
        s.notes.append(f"Highlighted: more than {TOLERANCE:.0%} away from the configuration it is compared with "
                       "(the baseline, or its method's none arm); see the warnings.")
        warnings = report.setdefault("warnings", [])
        for d in unequal:
            msg = _message(d)
            if msg not in warnings:
                warnings.append(msg)
                log.warning(msg)
    else:
        s.notes.append(f"Compared configurations trained within {TOLERANCE:.0%} of the same steps and images.")
    return s
