"""Carry out a study's plan: train (or resume) each run, then probe each SupCon run (``dsc study``)."""

from __future__ import annotations

import logging

from dsc.errors import DscError
from dsc.study.spec import PlannedRun, Study

log = logging.getLogger("dsc.study")  # the name its messages have always had


def execute(study: Study, *, keep_going: bool = False, executor: str = "local", jobs: int | None = None
            ) -> list[tuple[PlannedRun, str]]:
    """Carry out the plan (``executor``: ``local``, in order in this process, or ``processes``, ``jobs`` at a
    time in worker processes; dsc/study/executors.py); returns (run, error) for runs that failed (only with
    keep_going)."""
    from dsc.console import err
    from dsc.study.executors import RunJob, carry_out, default_jobs, run_processes, run_slurm

    failures: list[tuple[PlannedRun, str]] = []
    todo = [r for r in study.runs if r.action != "skip"]
    if todo:
        for note in study.budget_notes:
            err.print(f"[bold]study[/] budget {note}", highlight=False)
    if executor in ("processes", "slurm") and todo:
        finished: list[PlannedRun] = []

        def on_done(job: RunJob, error: DscError | None) -> None:
            finished.append(job.run)
            from rich.markup import escape

            what = f"failed: {error}" if error is not None else "done"
            err.print(f"[bold]study[/] {len(finished)}/{len(todo)}: {escape(job.run.name)} {escape(what)}",
                      highlight=False)
            if error is not None:
                if not keep_going:
                    raise error
                failures.append((job.run, str(error)))

        work = [RunJob.of(study, r) for r in todo]
        if executor == "slurm":
            folder = study.slurm.folder or study.spec.output / ".slurm"
            from rich.markup import escape

            err.print(f"[bold]study[/] {len(todo)} runs as a {study.slurm.cluster} job array (logs in "
                      f"{escape(str(folder))})", highlight=False)
            run_slurm(work, study.slurm, folder, on_done)
        else:
            n = min(jobs or default_jobs(), len(todo))
            err.print(f"[bold]study[/] {len(todo)} runs, {n} at a time in worker processes", highlight=False)
            run_processes(work, n, on_done)
        return failures
    for i, r in enumerate(todo, 1):
        err.print(f"[bold]study[/] {i}/{len(todo)}: {r.name} ({r.action}: {r.reason})", highlight=False)
        try:
            carry_out(RunJob.of(study, r))
        except DscError as exc:
            if not keep_going:
                raise
            log.error("%s failed: %s", r.name, exc)
            failures.append((r, str(exc)))
    return failures
