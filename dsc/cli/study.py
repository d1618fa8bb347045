"""``dsc study STUDY.toml``: run the whole study (CE and SupCon+probe x synthetic variants x seeds, every arm
of a method with the same training budget), then report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dsc.cli.common import Force, JsonFlag, print_json, split_csv


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
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Also write the report as Markdown.",
                                                  show_default=False)] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Also write the report as HTML.",
                                              show_default=False)] = None,
    force: Force = False,
    json_: JsonFlag = False,
) -> None:
    """Train and evaluate every configuration of the study over its seeds, skipping complete runs and
    resuming interrupted ones, then print the report. --force redoes every run."""
    from dsc.console import out
    from dsc.outputs import check_output
    from dsc.study import check_inputs, execute, load_study, plan, plan_rows

    spec = plan(load_study(file, seeds=split_csv(seeds, int), output=output), force=force)
    check_inputs(spec)  # every input of every run, before anything runs (--dry-run too)
    for path in (markdown, html):
        if path is not None:
            check_output(path, force=True)
    if dry_run:
        rows = plan_rows(spec)
        if json_:
            print_json({"runs": rows, "budget": spec.budget_notes})
            return
        from rich.table import Table

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
        return
    failures = execute(spec, keep_going=keep_going)
    if not report:
        if not failures and not json_:
            from dsc.console import count

            skipped = sum(r.action == "skip" for r in spec.runs)
            done = f"{count(len(spec.runs), 'run')} finished" + (f" ({skipped} already complete)" if skipped else "")
            out.print(f"{done} in {spec.spec.output}/; `dsc report {spec.spec.output}` prints the report",
                      highlight=False)
        return
    from dsc.report import make_report
    from dsc.report.table import render

    result = make_report([spec.spec.output], spec.report_settings)
    if markdown is not None:
        from dsc.report.export import write_markdown

        write_markdown(markdown, result.sections, result.warnings)
    if html is not None:
        from dsc.provenance import command_line
        from dsc.report.export import write_html

        write_html(html, result.sections, result.warnings, report=result.report, runs=result.runs,
                   command=command_line())
    if json_:
        print_json(result.report | {"failed": [{"run": str(r.path), "error": e} for r, e in failures]})
        return
    render(result.sections, out)
    if failures:
        from dsc.console import err

        err.print(f"[yellow]{len(failures)} run(s) failed:[/] " + ", ".join(r.name for r, _ in failures))
