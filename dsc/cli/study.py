"""``dsc study STUDY.toml``: run the whole study (CE and SupCon+probe x synthetic variants x seeds, every arm
of a method with the same training budget), then report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    split_csv,
)


def study(
    file: Annotated[Path, typer.Argument(help="Study file (TOML), see docs/commands/study.md.", show_default=False)],
    seeds: Annotated[str | None, typer.Option(help="Override the study's seeds, e.g. 0,1,2.",
                                              show_default=False)] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Override the study's output folder.",
                                                show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would run, run nothing.")] = False,
    keep_going: Annotated[bool, typer.Option("--keep-going", help="Continue with the other runs when one "
                                             "fails (it is listed as incomplete in the report).")] = False,
    report: Annotated[bool, typer.Option("--report/--no-report", help="End with the report (default).")] = True,
    markdown: Markdown = None,
    html: Html = None,
    results_figure: ResultsFigure = None,
    samples: Samples = None,
    confusion: Confusion = None,
    embedding_map: EmbeddingMap = None,
    embedding_run: EmbeddingRun = None,
    force: Force = False,
    json_: JsonFlag = False,
) -> None:
    """Train and evaluate every configuration of the study over its seeds, skipping complete runs and
    resuming interrupted ones, then print the report. --force redoes every run. The picture options replace
    those the study file names."""
    from dsc.console import out
    from dsc.outputs import check_output
    from dsc.study import check_inputs, execute, load_study, plan, plan_rows

    pictures = {"results_figure": results_figure, "samples": samples, "confusion": confusion,
                "embedding_map": embedding_map, "embedding_run": embedding_run}
    spec = plan(load_study(file, seeds=split_csv(seeds, int), output=output, pictures=pictures), force=force)
    check_inputs(spec)  # every input of every run, before anything runs (--dry-run too)
    for path in (markdown, html, *spec.pictures.paths()):
        if path is not None:
            check_output(path, force=True)
    if dry_run:
        rows = plan_rows(spec)
        if json_:
            print_json({"runs": rows, "budget": spec.budget_notes})
            return
        _print_plan(file, spec, rows)
        return
    failures = execute(spec, keep_going=keep_going)
    if not report:
        if not failures and not json_:
            _print_finished(file, spec)
        return
    from dsc.provenance import command_line
    from dsc.report import Pictures, build_report
    from dsc.report.table import render

    study, asked = spec.spec, spec.pictures
    pictures = Pictures(asked.results_figure, asked.samples, asked.confusion, asked.embedding_map,
                        asked.embedding_run)
    result = build_report([study.output], spec.report_settings, data=study.data,
                          synthetic=[*study.synthetic, *study.ood], pictures=pictures, markdown=markdown, html=html,
                          command=command_line())
    if json_:
        print_json(result.report | {"failed": [{"run": str(r.path), "error": e} for r, e in failures]})
        return
    render(result.sections, out)
    for p in result.written:
        out.print(f"wrote {p}", highlight=False, markup=False)   # a path is not markup
    if failures:
        from rich.markup import escape

        from dsc.console import count, err

        err.print(f"[yellow]{count(len(failures), 'run')} failed:[/] " + escape(", ".join(r.name for r, _ in failures)))


def _print_plan(file: Path, spec: Any, rows: list[dict[str, Any]]) -> None:
    """The --dry-run table: each run, what will happen to it and why."""
    from rich.table import Table

    from dsc.console import out

    table = Table(title=f"Study plan ({file}): runs in {spec.spec.output}/", title_justify="left",
                  caption="\n".join(f"budget {n}" for n in spec.budget_notes), caption_justify="left")
    table.add_column("run", no_wrap=True)
    for col in ("action", "reason", "synthetic", "negatives", "budget"):
        table.add_column(col)
    for r in rows:
        table.add_row(Path(r["run"]).name, r["action"], r["reason"],
                      ", ".join(Path(p).name for p in r["synthetic"]) or "–",
                      ", ".join(Path(p).name for p in r["negatives"]) or "–", r["budget"])
    out.print(table)


def _print_finished(file: Path, spec: Any) -> None:
    """--no-report: every run finished; how to get the report (and the pictures asked for)."""
    from dsc.console import count, out

    skipped = sum(r.action == "skip" for r in spec.runs)
    done = f"{count(len(spec.runs), 'run')} finished" + (f" ({skipped} already complete)" if skipped else "")
    out.print(f"{done} in {spec.spec.output}/; `dsc report {spec.spec.output}` prints the report",
              highlight=False, markup=False)
    if spec.pictures.paths():   # asked for, not drawn: say how to get them
        out.print(f"no pictures drawn ({', '.join(map(str, spec.pictures.paths()))}): `dsc study {file}` "
                  "without --no-report draws them and skips the complete runs", highlight=False,
                  markup=False)
