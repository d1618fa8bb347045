"""``dsc study STUDY.toml``: run the whole study (CE and SupCon+probe x synthetic variants x seeds, every arm
of a method with the same training budget), then report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    from dsc.study import StudyResult


def study(
    file: Annotated[Path, typer.Argument(help="Study file (TOML), see docs/commands/study.md.", show_default=False)],
    seeds: Annotated[str | None, typer.Option(help="Override the study's seeds, e.g. 0,1,2.",
                                              show_default=False)] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Override the study's output folder.",
                                                show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be built and run, and the "
                                                 "work, without doing any of it.")] = False,
    keep_going: Annotated[bool, typer.Option("--keep-going", help="Continue with the other runs when one "
                                             "fails (it is listed as incomplete in the report).")] = False,
    report: Annotated[bool, typer.Option("--report/--no-report", help="End with the report (default).")] = True,
    executor: Annotated[str, typer.Option(help="local: one run after another in this process; processes: "
                                          "--jobs runs at once, each in its own process pinned to its share "
                                          "of the cores or one GPU; slurm: a job array with the [slurm] "
                                          "table's resources. Stages are built the same way.")] = "local",
    jobs: Annotated[int | None, typer.Option(help="Runs at once with --executor processes (default: one per "
                                             "GPU, else one per two cores).", show_default=False)] = None,
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
    """Build what the study file describes (data, tokens, synthetic stores), train and evaluate every
    configuration over its seeds, skipping what is complete and resuming what was interrupted, then print
    the report. --force rebuilds every stage and redoes every run. The picture options replace those the
    study file names."""
    from dsc.console import out
    from dsc.provenance import command_line
    from dsc.study import run_study

    pictures = {"results_figure": results_figure, "samples": samples, "confusion": confusion,
                "embedding_map": embedding_map, "embedding_run": embedding_run}
    result = run_study(file, seeds=split_csv(seeds, int), output=output, pictures=pictures, dry_run=dry_run,
                       keep_going=keep_going, report=report, markdown=markdown, html=html, force=force,
                       command=command_line(), executor=executor, jobs=jobs)
    if dry_run:
        if json_:
            print_json({"stages": result.stages, "runs": result.plan, "budget": result.budget,
                        "pending_runs": result.pending_runs})
            return
        _print_plan(file, result)
        return
    if not report or result.report is None:
        if not result.failed and not json_:
            _print_finished(file, result)
        return
    if json_:
        print_json(result.report.report | {"failed": [{"run": str(run), "error": e} for run, e in result.failed]})
        return
    from dsc.report.table import render

    render(result.report.sections, out)
    for p in result.report.written:
        out.print(f"wrote {p}", highlight=False, markup=False)   # a path is not markup
    if result.failed:
        from rich.markup import escape

        from dsc.console import count, err

        err.print(f"[yellow]{count(len(result.failed), 'run')} failed:[/] "
                  + escape(", ".join(run.name for run, _ in result.failed)))


def _print_plan(file: Path, result: StudyResult) -> None:
    """The --dry-run tables: each stage the study builds and each run, what will happen to it and why, and
    the work in all."""
    from rich.table import Table

    from dsc.console import count, out

    if result.stages:
        stages = Table(title=f"Study stages ({file}): built before the runs", title_justify="left")
        stages.add_column("stage", no_wrap=True)
        for col in ("action", "reason", "work"):
            stages.add_column(col)
        for s in result.stages:
            stages.add_row(Path(s["stage"]).name, s["action"], s["reason"], s["work"])
        out.print(stages)
    if result.pending_runs:
        out.print(f"{count(result.pending_runs, 'run')} planned once the data is built (their budget and image "
                  "size depend on it)", highlight=False, markup=False)
    else:
        table = Table(title=f"Study plan ({file}): runs in {result.output}/", title_justify="left",
                      caption="\n".join(f"budget {n}" for n in result.budget), caption_justify="left")
        table.add_column("run", no_wrap=True)
        for col in ("action", "reason", "synthetic", "negatives", "budget"):
            table.add_column(col)
        for r in result.plan:
            table.add_row(Path(r["run"]).name, r["action"], r["reason"],
                          ", ".join(Path(p).name for p in r["synthetic"]) or "–",
                          ", ".join(Path(p).name for p in r["negatives"]) or "–", r["budget"])
        out.print(table)
    out.print(_totals(result), highlight=False, markup=False)


def _totals(result: StudyResult) -> str:
    """One line: what will be built, resumed and run, and what is already complete."""
    from collections import Counter

    from dsc.console import count

    parts = []
    for kind, noun in (("data", "data store"), ("tokens", "token set"), ("store", "synthetic store")):
        acts = Counter(s["action"] for s in result.stages if s["kind"] == kind)
        if acts:
            parts.append(f"{count(sum(acts.values()), noun)} ({', '.join(f'{n} {a}' for a, n in acts.items())})")
    acts = Counter(r["action"] for r in result.plan)
    runs = sum(acts.values()) or result.pending_runs
    parts.append(f"{count(runs, 'run')} ({', '.join(f'{n} {a}' for a, n in acts.items()) or 'after the data'})")
    todo: dict[str, int] = {}
    for s in result.stages:
        if s["action"] != "skip" and s["amount"] is not None:
            todo[s["unit"]] = todo.get(s["unit"], 0) + s["amount"]
    todo_runs = sum(r["action"] in ("run", "resume") for r in result.plan) if result.plan else result.pending_runs
    probes = sum(r["action"] == "probe" for r in result.plan)
    work = [f"{n} {unit}" for unit, n in todo.items()] + ([count(todo_runs, "run") + " to train"] if todo_runs else [])
    work += [count(probes, "probe") + " to redo"] if probes else []
    if any(s["action"] != "skip" and s["amount"] is None and s["kind"] != "data" for s in result.stages):
        work.append("the stages' images and steps, counted once the data is built")
    return "in all: " + "; ".join(parts) + (f"\nto do: {', '.join(work)}" if work else "\nnothing to do")


def _print_finished(file: Path, result: StudyResult) -> None:
    """--no-report: every run finished; how to get the report (and the pictures asked for)."""
    from dsc.console import count, out

    skipped = sum(r["action"] == "skip" for r in result.plan)
    done = f"{count(len(result.plan), 'run')} finished" + (f" ({skipped} already complete)" if skipped else "")
    out.print(f"{done} in {result.output}/; `dsc report {result.output}` prints the report",
              highlight=False, markup=False)
    if result.pictures:   # asked for, not drawn: say how to get them
        out.print(f"no pictures drawn ({', '.join(map(str, result.pictures))}): `dsc study {file}` "
                  "without --no-report draws them and skips the complete runs", highlight=False,
                  markup=False)
