"""``dsc report RUN...``: compare runs across seeds; synthetic-data quality; pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dsc.cli.common import (
    Confusion,
    EmbeddingMap,
    EmbeddingRun,
    Force,
    Html,
    JsonFlag,
    Markdown,
    ResultsFigure,
    Samples,
    print_json,
    resolve,
)

_Q = "Synthetic-data quality"


def report(
    runs: Annotated[list[Path] | None, typer.Argument(
        help="Run directories, or folders holding runs (searched two levels deep).", show_default=False)] = None,
    baseline: Annotated[str | None, typer.Option(
        "--baseline", help="Configuration name (e.g. ce/none) or run directory to compare against "
        "(default: ce/none, else supcon+probe/none).", show_default=False)] = None,
    per_class: Annotated[bool | None, typer.Option(
        "--per-class/--no-per-class", help="Per-class accuracy and most confused pairs.",
        show_default=False)] = None,
    strict: Annotated[bool | None, typer.Option(
        "--strict/--no-strict", help="Refuse runs made from different DATA.h5 stores.", show_default=False)] = None,
    curves: Annotated[bool | None, typer.Option(
        "--curves/--no-curves", help="Training curves from metrics.jsonl (default: on).", show_default=False)] = None,
    primary_metric: Annotated[str | None, typer.Option(
        "--primary-metric", "--metric", help="The one metric tested against the baseline (Holm-corrected, Δ "
        "column): top1 (default), macro_f1, ece, corruption_top1, ood_auroc, ood_fpr95, synthetic_ood_auroc, "
        "synthetic_ood_fpr95; the others are secondary.", show_default=False)] = None,
    ood_score: Annotated[str | None, typer.Option(
        "--ood-score", help="OOD score shown: msp, energy or knn (default msp).", show_default=False)] = None,
    allow_unequal_budget: Annotated[bool, typer.Option(
        "--allow-unequal-budget", help="Do not warn when compared configurations trained more than 5 % "
        "different optimizer steps or images (the Training budget table still shows them).")] = False,
    json_: JsonFlag = False,
    markdown: Markdown = None,
    html: Html = None,
    synthetic: Annotated[list[Path] | None, typer.Option(
        "--synthetic", help="Synthetic store (AUG.h5) to assess; repeatable.", rich_help_panel=_Q,
        show_default=False)] = None,
    data: Annotated[Path | None, typer.Option("--data", help="The real DATA.h5 the synthetic stores came from.",
                                              rich_help_panel=_Q, show_default=False)] = None,
    encoder: Annotated[Path | None, typer.Option(
        "--encoder", help="Run whose encoder gives the feature space (default: fixed random CNN).",
        rich_help_panel=_Q, show_default=False)] = None,
    classifier: Annotated[Path | None, typer.Option(
        "--classifier", help="Baseline run used as the real-data classifier (default: a linear probe on "
        "real train features).", rich_help_panel=_Q, show_default=False)] = None,
    min_confidence: Annotated[float | None, typer.Option(
        "--min-confidence", help="Confidence the real-data classifier must give the source class "
        "(default 0.5).", rich_help_panel=_Q, show_default=False)] = None,
    features: Annotated[str | None, typer.Option(
        "--features", help="Feature space without --encoder: random-cnn or pixels.", rich_help_panel=_Q,
        show_default=False)] = None,
    quality: Annotated[bool, typer.Option(
        "--quality/--no-quality", help="Assess the --synthetic stores (default); --no-quality when they are "
        "given only for --samples.", rich_help_panel=_Q)] = True,
    results_figure: ResultsFigure = None,
    samples: Samples = None,
    confusion: Confusion = None,
    embedding_map: EmbeddingMap = None,
    embedding_run: EmbeddingRun = None,
    force: Force = False,
) -> None:
    """Compare runs across seeds (mean ± std, t-intervals, Holm-corrected tests), assess synthetic data, pictures."""
    from dsc.console import out
    from dsc.errors import InputError
    from dsc.report.table import render

    settings = resolve("report", baseline=baseline, per_class=per_class, strict=strict, curves=curves,
                       primary_metric=primary_metric, ood_score=ood_score, min_confidence=min_confidence,
                       features=features).section("report")
    if not runs and not synthetic and samples is None:
        raise InputError("nothing to report: no RUN given",
                         hint="give run directories (dsc report runs/), or --synthetic AUG.h5 --data DATA.h5")
    from dsc.report.pictures import check_report_outputs

    check_report_outputs([results_figure, samples, confusion, embedding_map], markdown, html, force=force)
    if (synthetic or samples is not None) and data is None:
        raise InputError("--synthetic and --samples need the real images", hint="add --data DATA.h5")

    from dsc.provenance import command_line
    from dsc.report import Pictures, build_report

    result = build_report(list(runs or []), settings, allow_unequal_budget=allow_unequal_budget, data=data,
                          synthetic=list(synthetic or []), quality=quality, encoder=encoder, classifier=classifier,
                          pictures=Pictures(results_figure, samples, confusion, embedding_map, embedding_run),
                          markdown=markdown, html=html, command=command_line())
    if json_:
        print_json(result.report)
        return
    render(result.sections, out)  # warnings were logged on stderr
    for p in result.written:
        out.print(f"wrote {p}", highlight=False, markup=False)   # a path is not markup
