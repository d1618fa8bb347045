"""The whole ``dsc study`` command as one library call, what both ``dsc study`` and ``dsc.study()`` run:
the study file planned, every input and output checked, the runs carried out, then the report."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dsc.report.build import ReportResult


@dataclass
class StudyResult:
    """What a study did: the plan (each run, its action and why), how the training budgets were set, the
    runs that failed (with ``keep_going``) and the report (None with ``dry_run`` or ``report=False``)."""

    plan: list[dict[str, Any]]
    budget: list[str]
    output: Path  # the study's output folder
    pictures: list[Path] = field(default_factory=list)  # the figure files asked for
    failed: list[tuple[Path, str]] = field(default_factory=list)
    report: ReportResult | None = None


def run_study(file: Path, *, seeds: Sequence[int] | None = None, output: Path | None = None,
              pictures: dict[str, Any] | None = None, dry_run: bool = False, keep_going: bool = False,
              report: bool = True, markdown: Path | None = None, html: Path | None = None, force: bool = False,
              command: str | None = None, executor: str = "local", jobs: int | None = None) -> StudyResult:
    """Plan the study of ``file`` (``seeds``, ``output`` and ``pictures`` replace the file's), check every
    input of every run and every output path before anything runs (``dry_run`` stops there), carry out the
    runs (``force`` redoes complete ones; ``executor`` and ``jobs``: dsc/study/executors.py), then build the
    report of the study's output folder. ``command`` is the command line the HTML report records."""
    from dsc.errors import ConfigError
    from dsc.study.executors import EXECUTORS

    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}", hint=f"use one of: {', '.join(EXECUTORS)}")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, not {jobs}", hint="pass --jobs 2 to run two runs at once")
    from dsc.report.pictures import check_report_outputs
    from dsc.study import check_inputs, execute, load_study, plan, plan_rows

    spec = plan(load_study(file, seeds=list(seeds) if seeds is not None else None, output=output,
                           pictures=pictures), force=force)
    check_inputs(spec)  # every input of every run, before anything runs (dry_run too)
    check_report_outputs(spec.pictures.paths(), markdown, html, force=True)  # the report is redone
    result = StudyResult(plan_rows(spec), list(spec.budget_notes), spec.spec.output, spec.pictures.paths())
    if dry_run:
        return result
    with _study_lock(spec.spec.output):  # OUT.lock: one `dsc study` writes OUT/ at a time (each run has its own)
        result.failed = [(r.path, error) for r, error in execute(spec, keep_going=keep_going, executor=executor,
                                                                          jobs=jobs)]
        if report:
            from dsc.report import Pictures, build_report

            study, asked = spec.spec, spec.pictures
            result.report = build_report(
                [study.output], spec.report_settings, data=study.data, synthetic=[*study.synthetic, *study.ood],
                pictures=Pictures(asked.results_figure, asked.samples, asked.confusion, asked.embedding_map,
                                  asked.embedding_run), markdown=markdown, html=html, command=command)
    return result


@contextmanager
def _study_lock(output: Path) -> Iterator[None]:
    """Hold ``<output>.lock`` while the study runs (the main process; a second writer is refused at once,
    even with --force, naming the process that holds it)."""
    from dsc import parallel
    from dsc.locks import OutputLock

    if not parallel.is_main():
        yield
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    lock = OutputLock(output).acquire()
    try:
        yield
    finally:
        lock.release()
