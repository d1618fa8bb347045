"""Carry out a study's plan: build its stages (tokens, then stores), then train (or resume) each run and probe
each SupCon run (``dsc study``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dsc.errors import DscError
from dsc.study.spec import PlannedRun, Study

log = logging.getLogger("dsc.study")  # the name its messages have always had


def build_stages(study: Study, *, executor: str = "local", jobs: int | None = None) -> None:
    """Build the study's tokens, then its stores, on ``executor`` (each wave's jobs are independent); a stage
    that fails stops the study (the runs need it). The data stage is built before the runs are planned."""
    from dsc.study.executors import StageJob

    for wave in (study.stages.tokens.values(), [*study.stages.stores.values(), *study.stages.evaluation.values()]):
        work = [StageJob(s) for s in wave if s.action != "skip"]

        def failed(job: Any, exc: DscError) -> None:
            raise exc

        _carry(work, executor, jobs, study, "stages", failed)


def execute(study: Study, *, keep_going: bool = False, executor: str = "local", jobs: int | None = None
            ) -> list[tuple[PlannedRun, str]]:
    """Carry out the plan's runs (``executor``: ``local``, in order in this process; ``processes``, ``jobs`` at
    a time in worker processes; ``slurm``, a job array: dsc/study/executors.py); returns (run, error) for runs
    that failed (only with keep_going)."""
    from dsc.console import err
    from dsc.study.executors import RunJob

    failures: list[tuple[PlannedRun, str]] = []
    work = [RunJob.of(study, r) for r in study.runs if r.action != "skip"]
    if work:
        for note in study.budget_notes:
            err.print(f"[bold]study[/] budget {note}", highlight=False)

    def failed(job: Any, exc: DscError) -> None:
        if not keep_going:
            raise exc
        log.error("%s failed: %s", job.name, exc)
        failures.append((job.run, str(exc)))

    _carry(work, executor, jobs, study, "runs", failed)
    return failures


def _carry(work: list[Any], executor: str, jobs: int | None, study: Study, what: str,
           failed: Callable[[Any, DscError], None]) -> None:
    """Carry out ``work`` (run or stage jobs) on ``executor``, calling ``failed`` for each that fails."""
    from rich.markup import escape

    from dsc.console import err
    from dsc.study.executors import carry_out, default_jobs, run_processes, run_slurm

    if executor == "local" or not work:
        for i, job in enumerate(work, 1):
            item = getattr(job, "run", None) or job.stage
            err.print(f"[bold]study[/] {i}/{len(work)}: {escape(job.name)} ({item.action}: {escape(item.reason)})",
                      highlight=False)
            try:
                carry_out(job)
            except DscError as exc:
                failed(job, exc)
        return
    done = 0

    def on_done(job: Any, error: DscError | None) -> None:
        nonlocal done
        done += 1
        result = f"failed: {error}" if error is not None else "done"
        err.print(f"[bold]study[/] {done}/{len(work)}: {escape(job.name)} {escape(result)}", highlight=False)
        if error is not None:
            failed(job, error)

    if executor == "slurm":
        folder = study.slurm.folder or study.spec.output / ".slurm"
        err.print(f"[bold]study[/] {len(work)} {what} as a {study.slurm.cluster} job array (logs in "
                  f"{escape(str(folder))})", highlight=False)
        run_slurm(work, study.slurm, folder, on_done)
    else:
        wanted = jobs or default_jobs()
        n = min(wanted, len(work))
        err.print(f"[bold]study[/] {len(work)} {what}, {n} at a time in worker processes", highlight=False)
        # each worker computes on 1/wanted of the cores however few jobs are left, so that a job resumed alone
        # computes with the threads it started with (the thread count changes float sums, hence results)
        run_processes(work, n, on_done, slots=wanted)
