"""Comparing runs across seeds (statistics, tables, exports), synthetic-data quality and pictures.

>>> result = make_report([Path("study-out")], ReportSettings())     # doctest: +SKIP
>>> result.report["configurations"][0]["metrics"]["top1"]["mean"]   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsc.report.compare import build_report
from dsc.report.group import Group, group_runs
from dsc.report.runs import Run, discover, load_run
from dsc.report.table import Section

__all__ = ["Group", "ReportResult", "Run", "Section", "attach_findings", "build_report", "discover", "group_runs",
           "load_run", "make_report"]


@dataclass
class ReportResult:
    report: dict[str, Any]
    sections: list[Section]
    groups: list[Group]
    runs: list[Run]
    warnings: list[str] = field(default_factory=list)


def make_report(paths: list[Path], settings: Any, *, per_class: bool | None = None,
                curves: bool | None = None, allow_unequal_budget: bool = False) -> ReportResult:
    """Discover runs under ``paths`` and build the comparison (``settings``: a ReportSettings);
    ``allow_unequal_budget`` silences the warning about compared runs that trained unequal amounts."""
    from dsc.report.budget import budget_section
    from dsc.report.caveats import apply_caveats, flag_tiny_evaluation
    from dsc.report.curves import curves_section, run_curves
    from dsc.report.overlap import attach_overlap
    from dsc.report.per_class import per_class_data, per_class_sections
    from dsc.report.table import incomplete_section, main_section

    runs = discover(paths)
    report, groups = build_report(runs, baseline=settings.baseline, strict=settings.strict,
                                  primary_metric=settings.primary_metric, ood_score=settings.ood_score,
                                  alpha=settings.alpha)
    apply_caveats(report, groups)   # optimistic synthetic-OOD metrics: noted and marked before the tables
    flag_tiny_evaluation(report, groups)   # test classes under 5 images, test splits under 30: a warning
    sections: list[Section] = []
    if groups:
        sections.append(main_section(report))
    budget = budget_section(report, groups, allow_unequal=allow_unequal_budget)   # steps and images per run
    if budget is not None:
        sections.append(budget)
    per_class = settings.per_class if per_class is None else per_class
    if per_class and groups:
        data = per_class_data(groups, settings.top_confused)
        report["per_class"] = data
        sections += per_class_sections(data)
    curves = settings.curves if curves is None else curves
    if curves:
        sec = curves_section(runs)
        if sec is not None:
            sections.append(sec)
        report["curves"] = {r.name: run_curves(r) for r in runs if r.history}
    inc = incomplete_section(report)
    if inc is not None:
        sections.append(inc)
    shared = attach_overlap(report, runs)  # negatives that copy positives: warnings, JSON and a table
    if shared is not None:
        sections.append(shared)
    sections = attach_findings(report, groups, sections, settings)
    return ReportResult(report, sections, groups, runs, report["warnings"])


def attach_findings(report: dict[str, Any], groups: list[Group], sections: list[Section], settings: Any
                    ) -> list[Section]:
    """(Re)compute the answers to the three questions into ``report["findings"]`` and place their section
    after the comparison table (call again after adding ``report["quality"]``)."""
    from dsc.report.findings import findings, findings_section

    if "alpha" not in report:   # a quality-only report
        report.update(alpha=settings.alpha, ood_score=settings.ood_score, configurations=[], baseline=None)
    rows = findings(report, groups)
    report["findings"] = rows
    sections = [s for s in sections if not s.title.startswith("Findings")]
    sec = findings_section(rows, level=1.0 - report["alpha"])
    if sec is not None:
        at = 1 if sections and sections[0].title == "Comparison" else 0
        sections.insert(at, sec)
    return sections
