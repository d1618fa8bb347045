"""The three questions dsc asks, answered in sentences from the comparison (and the quality assessment):

1. Can the generator make convincing data for this dataset?  (synthetic-data quality, when assessed)
2. Are the generated images usable as positives (normal vs none) and as negatives (normal+OOD vs normal,
   or OOD vs none when a study has OOD negatives without synthetic positives)?
3. Does training with them generalise better and hold up better (the configuration chosen on validation
   against the baseline, on test: the primary metric, corruption accuracy, OOD detection)?

Every sentence reads the statistics ``compare_runs`` computed (t-intervals, Holm-adjusted p for the primary
metric, exploratory below ``stats.MIN_SEEDS`` seeds), so the Findings and the tables never disagree.
Each question has its own function returning rows; ``findings`` concatenates them.
"""

from __future__ import annotations

from typing import Any

from dsc.report import stats
from dsc.report.group import Group
from dsc.report.table import Cell, Section

Row = dict[str, str]

#: Question 2, by arm-pair kind (group.ARM_PAIRS): what the comparison asks.
ARM_QUESTIONS = {
    "positives": "synthetic positives help {method}?",
    "negatives": "OOD negatives help {method} on top of synthetic positives?",
    "negatives-only": "OOD negatives help {method}?",
    "both": "synthetic data (normal+OOD) helps {method}?",
    "named": "the {arm} arm's synthetic data helps {method}?",
}


def say(d: dict[str, Any] | None, unit: str = "pp") -> str:
    """A comparison in words: delta, interval, then its status (exploratory with n, Holm-adjusted p and
    mark for the primary metric, unadjusted p labelled secondary for the others)."""
    if d is None or d.get("delta") is None:
        return "no comparable values"
    txt = f"{100 * d['delta']:+.1f} {unit}"
    if d.get("ci"):
        lo, hi = d["ci"]
        txt += f" [{100 * lo:+.1f}, {100 * hi:+.1f}]"
    test = d.get("test", "none") + (" (unpaired)" if d.get("test") == "welch-t" else "")
    verdict = d.get("verdict") or ("untested" if d.get("p") is None else "exploratory")
    if verdict == "untested":
        return txt + f" (untested, n={d['n']})"
    if verdict == "exploratory":
        return txt + f" (exploratory, n={d['n']} < {stats.MIN_SEEDS} seeds, {test})"
    if verdict == "secondary":
        return txt + f" (secondary: p={d['p']:.3f} unadjusted, {test}, n={d['n']})"
    p = d.get("p_holm", d["p"])
    return txt + f" (Holm-adjusted p={p:.3f} {d['mark']}, {test}, n={d['n']})"


def _metric_label(report: dict[str, Any], key: str) -> str:
    return next((m["label"] for m in report.get("metrics", []) if m["key"] == key), key)


def quality_rows(report: dict[str, Any]) -> list[Row]:
    """Question 1, one row per assessed synthetic store."""
    quality = report.get("quality")
    rows: list[Row] = []
    for store in (quality or {}).get("stores", []):
        ov = store.get("overall", {})
        near = sum(c.get(r, {}).get("near_copies", 0) for c in store["classes"].values() for r in ("normal", "ood"))
        parts = []
        if ov.get("acceptance") is not None:
            parts.append(f"{100 * ov['acceptance']:.0f} % of normal images accepted by a real-data classifier "
                         f"(p≥{quality['min_confidence']:g})")
        if ov.get("fd") is not None:
            parts.append(f"FD {ov['fd']:.1f}, KID {ov['kid']:.3f}")
        if "ood_still_source" in ov:
            parts.append(f"{100 * ov['ood_still_source']:.0f} % of OOD images still look like their source class")
        parts.append(f"{near} near-copies")
        rows.append({"question": f"1. convincing synthetic data? ({store['path']})", "answer": "; ".join(parts)})
    return rows


def collapsed_runs(groups: list[Group]) -> dict[str, tuple[int, int]]:
    """{configuration: (runs whose projections ended collapsed, runs)} for configurations with any."""
    from dsc.report.curves import run_curves

    out = {}
    for g in groups:
        k = sum(1 for r in g.runs if r.history and run_curves(r)["collapsed"])
        if k:
            out[g.name] = (k, len(g.runs))
    return out


def _collapse_note(names: tuple[str, ...], collapsed: dict[str, tuple[int, int]]) -> str:
    """``; collapsed runs: ...`` for the compared configurations whose encoders did not learn, else ''."""
    hit = [f"{collapsed[n][0]} of {collapsed[n][1]} runs of {n}" for n in names if n in collapsed]
    if not hit:
        return ""
    return ("; collapsed: " + ", ".join(hit) + " (the encoder did not learn: this compares no learned "
            "representation; docs/training.md, 'Collapse')")


def arm_rows(report: dict[str, Any], collapsed: dict[str, tuple[int, int]] | None = None) -> list[Row]:
    """Question 2: each arm against the arm it differs from by one kind of synthetic data (same method,
    backbone and DATA.h5), on the primary metric; both configurations are named in the question, and a
    configuration with collapsed runs (``collapsed_runs``) is named in the answer."""
    methods = {c["name"]: c["method_label"] for c in report.get("configurations", [])}
    arm_of = {c["name"]: (c.get("synthetic") or {}).get("label", "?") for c in report.get("configurations", [])}
    metric = _metric_label(report, report.get("primary_metric", "top1"))
    rows: list[Row] = []
    for arm in report.get("arm_comparisons", []):
        label = arm_of.get(arm["treated"], "?")
        question = ARM_QUESTIONS[arm["kind"]].format(method=methods.get(arm["treated"], "?"), arm=label)
        note = _collapse_note((arm["treated"], arm["reference"]), collapsed or {})
        rows.append({"question": f"2. {question} ({arm['treated']} vs {arm['reference']}, {metric})",
                     "answer": say(arm) + note})
    return rows


def generalisation_rows(report: dict[str, Any]) -> list[Row]:
    """Question 3: the configuration with the best validation top-1 against the baseline, on test."""
    base_name = report.get("baseline")
    configs = {c["name"]: c for c in report.get("configurations", [])}
    if not base_name or len(configs) < 2:
        return []
    question = "3. generalises and holds up better than the baseline? (chosen on validation, reported on test)"
    chosen = report.get("selection")
    if chosen is None:
        return [{"question": question, "answer": "no validation top-1 recorded: dsc does not choose a best "
                 "configuration on the test numbers it then reports"}]
    best = configs[chosen["name"]]
    val = f"{100 * chosen['val_top1']:.1f} %"
    if best["name"] == base_name:
        return [{"question": question, "answer": f"no: the baseline {base_name} has the best validation top-1 "
                 f"({val})"}]
    primary = report.get("primary_metric", "top1")
    keys = [primary] + [k for k in ("corruption_top1", "ood_auroc", "ece") if k != primary]
    names = {"corruption_top1": "corruption accuracy", "ood_auroc": "OOD AUROC", "ece": "ECE"}
    cell = best.get("examples_per_class")
    among = f", among the {cell}-per-class configurations" if cell is not None else ""
    parts = [f"chosen on validation top-1: {best['name']} ({val} val{among})"]
    for key in keys:
        d = best["deltas"].get(key)
        if d is None:
            continue
        what = f"test {_metric_label(report, key)} vs {base_name}:" if key == primary else names.get(key, key)
        marked = d.get("mark") not in (None, "", "n.s.")
        verdict = {True: " (better)", False: " (worse)"}.get(d.get("better"), "") if marked else ""
        parts.append(f"{what} {say(d)}{verdict}")
    if "relative_corruption_error" in best:
        parts.append(f"relative corruption error {best['relative_corruption_error']:.2f}")
    return [{"question": question, "answer": "; ".join(parts)}]


def findings(report: dict[str, Any], groups: list[Group]) -> list[Row]:
    """Rows {"question", "answer"} for the report (JSON) and its "Findings" section."""
    from dsc.report.caveats import caveat_rows, warn  # caveats: OOD label noise, optimistic syn-OOD AUROC

    collapsed = collapsed_runs(groups)
    if collapsed:
        warn(report, "collapsed runs (their encoders did not learn): " + ", ".join(
            f"{k} of {n} of {name}" for name, (k, n) in collapsed.items()) + "; see docs/training.md, 'Collapse'")
    return (quality_rows(report) + arm_rows(report, collapsed) + generalisation_rows(report)
            + caveat_rows(report, groups))


def findings_section(rows: list[Row], level: float = 0.95) -> Section | None:
    if not rows:
        return None
    s = Section("Findings: the three questions", ["question", "answer"], key=None)   # both columns wrap alike
    for r in rows:
        s.rows.append([Cell(r["question"]), Cell(r["answer"])])
    s.notes.append(
        f"pp = percentage points; [..] {100 * level:g} % t-interval of the difference (paired by seed). Fewer than "
        f"{stats.MIN_SEEDS} seeds: exploratory, no p-value or mark; an interval that includes 0 is "
        "inconclusive, not evidence of no effect. The primary metric's p-values are Holm-adjusted over every "
        "primary comparison in the report; other metrics are secondary (unadjusted, unmarked). Question 3 "
        "chooses the configuration on validation top-1 and reports it on test.")
    return s
