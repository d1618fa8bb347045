"""The comparison itself: configurations, per-seed statistics and deltas against the baseline, as one
JSON-able dict that every renderer (terminal, JSON, Markdown, HTML) reads."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dsc.errors import ConfigError, MismatchError
from dsc.provenance import now
from dsc.report import stats
from dsc.report.caveats import mark_incomplete
from dsc.report.group import (
    Group,
    arm_pairs,
    cell_reference,
    find_baseline,
    group_runs,
    largest_cell,
    mixed_data,
    relabelled,
)
from dsc.report.runs import Run

log = logging.getLogger(__name__)
REPORT_SCHEMA = "dsc-report/1"


def _get(obj: Any, *path: str) -> float | None:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return float(obj) if isinstance(obj, (int, float)) and not isinstance(obj, bool) else None


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool
    getter: Callable[[dict], float | None]


#: Validation top-1 (baseline: the selected epoch's; SupCon: the probe's), used only to select.
VAL_TOP1: Callable[[dict], float | None] = lambda m: _get(m, "val", "top1")  # noqa: E731


def metric_table(ood_score: str = "msp") -> list[Metric]:
    """The metrics the report compares (fractions in metrics.json, shown in %)."""
    return [
        Metric("top1", "top-1", True, lambda m: _get(m, "test", "top1")),
        Metric("macro_f1", "F1", True, lambda m: _get(m, "test", "macro_f1")),
        Metric("ece", "ECE", False, lambda m: _get(m, "test", "ece")),
        Metric("corruption_top1", "corrupt.", True,
               lambda m: _get(m, "robustness", "mean_corruption_top1")),
        Metric("ood_auroc", "OOD AUROC", True,
               lambda m: _get(m, "ood", "holdout", ood_score, "auroc")),
        Metric("ood_fpr95", "FPR95", False, lambda m: _get(m, "ood", "holdout", ood_score, "fpr95")),
        Metric("synthetic_ood_auroc", "syn-OOD AUROC", True,
               lambda m: _get(m, "ood", "synthetic", ood_score, "auroc")),
        Metric("synthetic_ood_fpr95", "syn-OOD FPR95", False,
               lambda m: _get(m, "ood", "synthetic", ood_score, "fpr95")),
    ]


def _mean_per_corruption(group: Group) -> dict[str, dict[str, float]]:
    acc: dict[str, dict[str, list[float]]] = {}
    for run in group.runs:
        per = ((run.metrics or {}).get("robustness") or {}).get("per_corruption") or {}
        for name, sev in per.items():
            if isinstance(sev, dict):
                for s, v in sev.items():
                    if isinstance(v, (int, float)):
                        acc.setdefault(name, {}).setdefault(str(s), []).append(float(v))
    return {c: {s: stats.mean(v) for s, v in sev.items()} for c, sev in acc.items()}


def relative_corruption_error(group: Group, baseline: Group) -> float | None:
    """mCE against the baseline (ImageNet-C style): per corruption, the summed error over severities
    relative to the baseline's, averaged over corruptions. 1.0 = as robust as the baseline."""
    a, b = _mean_per_corruption(group), _mean_per_corruption(baseline)
    ratios = []
    for name in sorted(set(a) & set(b)):
        sev = sorted(set(a[name]) & set(b[name]))
        err_a = sum(1 - a[name][s] for s in sev)
        err_b = sum(1 - b[name][s] for s in sev)
        if sev and err_b > 0:
            ratios.append(err_a / err_b)
    return stats.mean(ratios) if ratios else None


def _test(a: dict[int, float], b: dict[int, float], m: Metric, level: float) -> dict[str, Any]:
    d = stats.compare(a, b, level=level).as_dict()
    d["better"] = None if d["delta"] is None or d["delta"] == 0 else ((d["delta"] > 0) == m.higher_is_better)
    return d


def _judge(d: dict[str, Any], *, primary: bool, alpha: float) -> None:
    """Add the role, the Holm-adjusted p's mark (primary, n >= MIN_SEEDS only) and a one-word verdict:
    untested | exploratory | secondary | tested."""
    d["role"] = "primary" if primary else "secondary"
    if d["p"] is None:
        d["verdict"] = "untested"
    elif d["exploratory"]:
        d["verdict"] = "exploratory"
    else:
        d["verdict"] = "tested" if primary else "secondary"
    d["mark"] = stats.mark(d.get("p_holm"), alpha, d["n"]) if primary else ""


def _holm_family(tests: list[dict[str, Any]]) -> None:
    """Holm-adjust, in place, one family of primary-metric comparisons (``p_holm``)."""
    for d, adj in zip(tests, stats.holm([d["p"] for d in tests]), strict=True):
        d["p_holm"] = adj


def compare_runs(runs: list[Run], *, baseline: str | None = None, strict: bool = False,
                 primary_metric: str = "top1", ood_score: str = "msp", alpha: float = 0.05
                 ) -> tuple[dict[str, Any], list[Group]]:
    """Group, summarise and compare runs. Returns the report dict and the groups.

    Every comparison has a t-interval at level 1 - alpha. The primary metric's comparisons (each
    configuration against the baseline, and the arm pairs the Findings ask about) form one family whose
    p-values are Holm-adjusted; the other metrics are secondary (unadjusted p, never marked). With fewer
    than ``stats.MIN_SEEDS`` seeds a comparison is exploratory and never marked."""
    warnings = _input_warnings(runs, strict)
    groups = group_runs(runs)
    base = find_baseline(groups, baseline, runs) if groups else None
    warnings += mark_incomplete(groups)   # after the baseline lookup, so `--baseline ce/none` still finds it
    metrics = metric_table(ood_score)
    by_key = {m.key: m for m in metrics}
    if primary_metric not in by_key:
        raise ConfigError(f"unknown primary metric {primary_metric!r}", hint=f"use one of: {', '.join(by_key)}")
    primary = by_key[primary_metric]
    level = 1.0 - alpha
    family: dict[tuple[str, str], dict[str, Any]] = {}   # (treated, reference) -> primary-metric test
    configs = [_configuration(g, cell_reference(base, g, groups), metrics, primary, level, family)
               for g in groups]
    arms = _arm_comparisons(groups, primary, level, family)
    _holm_family(list(family.values()))
    for d in family.values():
        _judge(d, primary=True, alpha=alpha)
    for entry in configs:
        for key, d in entry["deltas"].items():
            if key != primary.key:
                _judge(d, primary=False, alpha=alpha)
    for arm in arms:   # copies of their family entries, now adjusted
        arm.update(family[(arm["treated"], arm["reference"])])
    report = {
        "schema": REPORT_SCHEMA, "created": now(), "metric": primary.key, "primary_metric": primary.key,
        "ood_score": ood_score, "alpha": alpha,
        "statistics": {"interval": "student-t", "level": level, "min_seeds": stats.MIN_SEEDS,
                       "multiplicity": "holm", "family_size": sum(d["p"] is not None for d in family.values())},
        "baseline": base.name if base else None,
        "metrics": [{"key": m.key, "label": m.label, "higher_is_better": m.higher_is_better,
                     "role": "primary" if m is primary else "secondary"} for m in metrics],
        "configurations": configs, "best": _best(metrics, configs), "arm_comparisons": arms,
        "selection": select_on_validation(configs, cell=base.examples_per_class if base else largest_cell(groups)),
        "warnings": warnings,
        "incomplete": [{"run": r.name, "path": str(r.path), "reason": r.problem or "incomplete"}
                       for r in runs if not r.complete],
    }
    for w in warnings:
        log.warning(w)
    return report, groups


def _input_warnings(runs: list[Run], strict: bool) -> list[str]:
    """Runs from different DATA.h5 stores (refused with ``strict``) and relabelled runs."""
    warnings: list[str] = []
    mixed = mixed_data(runs)
    if mixed:
        listing = "; ".join(f"{fp}: {', '.join(names)}" for fp, names in mixed.items())
        msg = f"runs come from different DATA.h5 stores (by fingerprint: {listing})"
        if strict:
            raise MismatchError(msg, hint="compare runs made from one DATA.h5, or drop --strict")
        warnings.append(msg + "; their numbers are not comparable")
    return warnings + [w for w in (relabelled(r) for r in runs if r.complete) if w]


def _configuration(g: Group, base: Group | None, metrics: list[Metric], primary: Metric, level: float,
                   family: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """One configuration's entry: summaries per metric, deltas against the baseline (its primary-metric
    test joins ``family``), timings."""
    entry: dict[str, Any] = {
        "name": g.name, "method": g.method, "method_label": g.method_label,
        "examples_per_class": g.examples_per_class, "reference": base.name if base is not None else None,
        "protocol": g.protocol,
        "synthetic": g.synthetic, "synthetic_label": g.synthetic_label, "backbone": g.backbone,
        "data_fingerprint": g.runs[0].data_fingerprint, "settings": g.settings,
        "seeds": g.seeds, "n": len(g.runs), "runs": [str(r.path) for r in g.runs],
        "metrics": {}, "deltas": {}, "notes": list(g.notes),
    }
    val = g.values(VAL_TOP1)
    if val:
        entry["val"] = {"top1": stats.summary(list(val.values())) | {"seeds": list(val)}}
    for m in metrics:
        vals = g.values(m.getter)
        if vals:
            entry["metrics"][m.key] = stats.summary(list(vals.values())) | {"seeds": list(vals)}
    if base is not None and g is not base:
        for m in metrics:
            a, b = g.values(m.getter), base.values(m.getter)
            if a and b:
                entry["deltas"][m.key] = _test(a, b, m, level)
        if primary.key in entry["deltas"]:
            family[(g.name, base.name)] = entry["deltas"][primary.key]
        mce = relative_corruption_error(g, base)
        if mce is not None:
            entry["relative_corruption_error"] = mce
    timings: dict[str, list[float]] = {}
    for r in g.runs:
        for stage, sec in r.timings().items():
            timings.setdefault(stage, []).append(sec)
    entry["timings"] = {k: stats.mean(v) for k, v in timings.items()}
    return entry


def _arm_comparisons(groups: list[Group], primary: Metric, level: float,
                     family: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """The arm pairs the Findings ask about, on the primary metric (each test joins ``family`` once)."""
    arms = []
    for kind, a, b in arm_pairs(groups):
        va, vb = a.values(primary.getter), b.values(primary.getter)
        if not va or not vb:
            continue
        d = family.setdefault((a.name, b.name), _test(va, vb, primary, level))
        arms.append({"kind": kind, "treated": a.name, "reference": b.name, "metric": primary.key, **d})
    return arms


def _best(metrics: list[Metric], configs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per metric, the configurations with the best mean (none when all tie)."""
    best: dict[str, list[str]] = {}
    for m in metrics:
        scored = [(c["metrics"][m.key]["mean"], c["name"]) for c in configs if m.key in c["metrics"]]
        if len(scored) > 1:
            top = max(v for v, _ in scored) if m.higher_is_better else min(v for v, _ in scored)
            winners = [n for v, n in scored if math.isclose(v, top, rel_tol=1e-12, abs_tol=1e-12)]
            if len(winners) < len(scored):   # a column where all configurations tie has no best
                best[m.key] = winners
    return best


def select_on_validation(configs: list[dict[str, Any]], cell: int | None = None) -> dict[str, Any] | None:
    """The configuration with the best mean validation top-1 (ties: the first), or None without val numbers.
    Test numbers never take part in the choice. In a few-shot sweep only the configurations of one cell
    (``cell`` examples per class, the baseline's) compete: more real images is not a choice."""
    scored = [(c["val"]["top1"]["mean"], i) for i, c in enumerate(configs)
              if (c.get("val") or {}).get("top1", {}).get("mean") is not None
              and c.get("examples_per_class") == cell]
    if not scored:
        return None
    top = max(v for v, _ in scored)
    i = next(i for v, i in scored if v == top)
    return {"name": configs[i]["name"], "by": "val.top1", "val_top1": top}
