"""The three questions dsc asks, answered in sentences from the comparison (and the quality assessment):

1. Can the generator make convincing data for this dataset?  (synthetic-data quality, when assessed)
2. Are the generated images usable as positives (normal vs none) and as negatives (normal+OOD vs normal)?
3. Does training with them generalise better and hold up better (best configuration vs the baseline on
   top-1, corruption accuracy, OOD detection)?
"""

from __future__ import annotations

from typing import Any

from dsc.report import stats
from dsc.report.compare import metric_table
from dsc.report.group import Group
from dsc.report.table import Cell, Section


def _pair(a: Group, b: Group, getter, resamples: int, seed: int, alpha: float) -> dict[str, Any] | None:
    va, vb = a.values(getter), b.values(getter)
    if not va or not vb:
        return None
    res = stats.compare(va, vb, resamples=resamples, seed=seed).as_dict()
    res["mark"] = stats.mark(res["p"], alpha)
    return res


def _say(d: dict[str, Any] | None, unit: str = "pp") -> str:
    if d is None or d.get("delta") is None:
        return "no comparable values"
    txt = f"{100 * d['delta']:+.1f} {unit}"
    if d.get("p") is not None:
        txt += f" (p={d['p']:.3f} {d['mark']}, {d['test']}, n={d['n']})"
    else:
        txt += f" (untested, n={d['n']})"
    return txt


def findings(report: dict[str, Any], groups: list[Group], *, resamples: int = 10000, seed: int = 0
             ) -> list[dict[str, str]]:
    """Rows {"question", "answer"} for the report (JSON) and its "Findings" section."""
    alpha = report["alpha"]
    metrics = {m.key: m for m in metric_table(report["ood_score"])}
    top1 = metrics["top1"].getter
    rows: list[dict[str, str]] = []
    quality = report.get("quality")
    if quality:
        for store in quality.get("stores", []):
            ov = store.get("overall", {})
            near = sum(c.get(r, {}).get("near_copies", 0) for c in store["classes"].values() for r in ("normal", "ood"))
            parts = []
            if ov.get("acceptance") is not None:
                parts.append(f"{100 * ov['acceptance']:.0f} % of normal images accepted by a real-data classifier "
                             f"(p≥{quality['min_confidence']:g})")
            if ov.get("fd") is not None:
                parts.append(f"FD {ov['fd']:.1f}, KID {ov['kid']:.3f}")
            if "ood_still_source" in ov:
                parts.append(f"{100 * ov['ood_still_source']:.0f} % of OOD images still look like their source "
                             "class")
            parts.append(f"{near} near-copies")
            rows.append({"question": f"1. convincing synthetic data? ({store['path']})", "answer": "; ".join(parts)})
    by = {(g.method, g.synthetic["label"]): g for g in groups}
    for method in dict.fromkeys(g.method for g in groups):
        label = groups[[g.method for g in groups].index(method)].method_label
        none, normal, ood = by.get((method, "none")), by.get((method, "normal")), by.get((method, "normal+ood"))
        if none and normal:
            rows.append({"question": f"2. synthetic positives help {label}? (normal vs none, top-1)",
                         "answer": _say(_pair(normal, none, top1, resamples, seed, alpha))})
        if normal and ood:
            rows.append({"question": f"2. OOD negatives help {label}? (normal+OOD vs normal, top-1)",
                         "answer": _say(_pair(ood, normal, top1, resamples, seed, alpha))})
        elif none and ood and not normal:
            rows.append({"question": f"2. synthetic data (normal+OOD) helps {label}? (vs none, top-1)",
                         "answer": _say(_pair(ood, none, top1, resamples, seed, alpha))})
    base_name = report.get("baseline")
    configs = {c["name"]: c for c in report["configurations"]}
    if base_name and len(configs) > 1:
        best = max((c for c in report["configurations"] if "top1" in c["metrics"]),
                   key=lambda c: c["metrics"]["top1"]["mean"])
        if best["name"] == base_name:
            rows.append({"question": "3. generalises better than the baseline?",
                         "answer": f"no: the baseline {base_name} has the best top-1 "
                                   f"({100 * best['metrics']['top1']['mean']:.1f} %)"})
        else:
            parts = [f"best top-1: {best['name']} ({100 * best['metrics']['top1']['mean']:.1f} %), "
                     f"{_say(best['deltas'].get('top1'))} vs {base_name}"]
            for key, what in (("corruption_top1", "corruption accuracy"), ("ood_auroc", "OOD AUROC"),
                              ("ece", "ECE")):
                d = best["deltas"].get(key)
                if d:
                    verdict = {True: " (better)", False: " (worse)"}.get(d.get("better"), "")
                    parts.append(f"{what} {_say(d)}{verdict}")
            if "relative_corruption_error" in best:
                parts.append(f"relative corruption error {best['relative_corruption_error']:.2f}")
            rows.append({"question": "3. generalises and holds up better than the baseline?",
                         "answer": "; ".join(parts)})
    return rows


def findings_section(rows: list[dict[str, str]]) -> Section | None:
    if not rows:
        return None
    s = Section("Findings: the three questions", ["question", "answer"])
    for r in rows:
        s.rows.append([Cell(r["question"]), Cell(r["answer"])])
    s.notes.append("pp = percentage points; with few seeds a non-significant (n.s.) difference is inconclusive, "
                   "not evidence of no effect.")
    return s
