"""Building a report: the comparison of runs (``make_report``), the synthetic-data quality, the Findings, the
pictures and the exports, in one place (``build_report``) shared by `dsc report` and `dsc study`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsc.errors import InputError
from dsc.report.compare import compare_runs
from dsc.report.group import Group
from dsc.report.runs import Run, discover
from dsc.report.table import Section

#: The HTML document's title of each figure, by its kind in the report's "figures" (dsc.report.pictures).
HTML_TITLES = {"results": "Results per configuration", "samples": "Real and synthetic images per class",
               "confusion": "Confusion matrices", "embedding": "Embedding map"}


@dataclass
class ReportResult:
    """A built report: the JSON dict, its tables, the groups and runs compared, warnings, files written."""

    report: dict[str, Any]
    sections: list[Section]
    groups: list[Group]
    runs: list[Run]
    warnings: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


@dataclass
class Pictures:
    """The figure files a report draws (None: not drawn); see ``dsc.report.pictures.draw_figures``."""

    results: Path | None = None
    samples: Path | None = None
    confusion: Path | None = None
    embedding_map: Path | None = None
    embedding_run: str | None = None


def html_figures(full: dict[str, Any]) -> list[tuple[str, Path]]:
    """(title, path) of the figures a report drew (``full["figures"]``, see dsc.report.pictures), for the HTML
    document to embed."""
    return [(HTML_TITLES.get(str(f.get("kind")), str(f.get("title"))), Path(f["path"]))
            for f in full.get("figures") or []]


def build_report(runs: Sequence[Path], settings: Any, *, allow_unequal_budget: bool = False,
                 data: Path | None = None, synthetic: Sequence[Path] = (), quality: bool = False,
                 encoder: Path | None = None, classifier: Path | None = None, pictures: Pictures | None = None,
                 markdown: Path | None = None, html: Path | None = None, command: str | None = None
                 ) -> ReportResult:
    """The whole report (``settings``: a ReportSettings): the runs under ``runs`` compared; with ``quality``
    the ``synthetic`` stores assessed against ``data`` (and the Findings redone); the ``pictures`` drawn
    (``samples`` from ``data`` and ``synthetic``); Markdown and HTML written. The files written are listed in
    ``result.written`` and ``report["written"]``; ``command`` is the command line the HTML records."""
    result = (make_report(list(runs), settings, allow_unequal_budget=allow_unequal_budget) if runs
              else ReportResult({"schema": "dsc-report/1"}, [], [], [], []))
    if synthetic and quality:
        from dsc.evaluate.quality import assess
        from dsc.report.quality import quality_sections

        if data is None:
            raise InputError("the quality assessment needs the real images", hint="add --data DATA.h5")
        result.report["quality"] = assess(data, list(synthetic), settings=settings, encoder=encoder,
                                          classifier=classifier)
        sections = result.sections + quality_sections(result.report["quality"])
        result.sections = attach_findings(result.report, result.groups, sections, settings)
        result.warnings = list(result.report.get("warnings", result.warnings))  # the Findings may add some
    from dsc.report.pictures import draw_figures

    p = pictures or Pictures()
    written = draw_figures(result.report, result if runs else None, results=p.results, samples=p.samples,
                           confusion=p.confusion, embedding_map=p.embedding_map, embedding_run=p.embedding_run,
                           data=data, synthetic=list(synthetic), seed=settings.seed)
    if markdown is not None:
        from dsc.report.export import write_markdown

        written.append(write_markdown(markdown, result.sections, result.warnings))
    if html is not None:
        from dsc.report.export import write_html

        written.append(write_html(html, result.sections, result.warnings, report=result.report, runs=result.runs,
                                  figures=html_figures(result.report), command=command))
    if written:
        result.report["written"] = [str(p) for p in written]
    result.written = written
    return result


def make_report(paths: list[Path], settings: Any, *, per_class: bool | None = None,
                curves: bool | None = None, allow_unequal_budget: bool = False) -> ReportResult:
    """Discover runs under ``paths`` and build the comparison (``settings``: a ReportSettings);
    ``allow_unequal_budget`` silences the warning about compared runs that trained unequal amounts."""
    from dsc.report.budget import budget_section
    from dsc.report.caveats import apply_caveats, flag_tiny_evaluation
    from dsc.report.curves import curves_section, run_curves
    from dsc.report.efficiency import efficiency_section
    from dsc.report.overlap import attach_overlap
    from dsc.report.per_class import per_class_data, per_class_sections
    from dsc.report.table import incomplete_section, main_section

    runs = discover(paths)
    report, groups = compare_runs(runs, baseline=settings.baseline, strict=settings.strict,
                                  primary_metric=settings.primary_metric, ood_score=settings.ood_score,
                                  alpha=settings.alpha)
    apply_caveats(report, groups)   # optimistic synthetic-OOD metrics: noted and marked before the tables
    flag_tiny_evaluation(report, groups)   # test classes under 5 images, test splits under 30: a warning
    sections: list[Section] = []
    if groups:
        sections.append(main_section(report))
    efficiency = efficiency_section(report, groups)   # a few-shot sweep: the metric against examples per class
    if efficiency is not None:
        sections.append(efficiency)
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
