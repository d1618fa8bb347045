"""Carry out a study's plan: train (or resume) each run, then probe each SupCon run (``dsc study``)."""

from __future__ import annotations

import logging

from dsc.errors import DscError
from dsc.study.spec import PlannedRun, Study

log = logging.getLogger("dsc.study")  # the name its messages have always had


def execute(study: Study, *, keep_going: bool = False, executor: str = "local", jobs: int | None = None
            ) -> list[tuple[PlannedRun, str]]:
    """Carry out the plan (``executor``: ``local``, in order in this process; ``processes``, ``jobs`` at a
    time in worker processes; ``slurm``, a job array: dsc/study/executors.py); returns (run, error) for runs
    that failed (only with keep_going)."""
    from rich.markup import escape

    from dsc.console import err
    from dsc.study.executors import RunJob, carry_out, default_jobs, run_processes, run_slurm

    failures: list[tuple[PlannedRun, str]] = []
    work = [RunJob.of(study, r) for r in study.runs if r.action != "skip"]
    if work:
        for note in study.budget_notes:
            err.print(f"[bold]study[/] budget {note}", highlight=False)

    def failed(run: PlannedRun, exc: DscError) -> None:
        if not keep_going:
            raise exc
        log.error("%s failed: %s", run.name, exc)
        failures.append((run, str(exc)))

    if executor == "local" or not work:
        for i, job in enumerate(work, 1):
            r = job.run
            err.print(f"[bold]study[/] {i}/{len(work)}: {r.name} ({r.action}: {r.reason})", highlight=False)
            try:
                carry_out(job)
            except DscError as exc:
                failed(r, exc)
        return failures
    done = 0

    def on_done(job: RunJob, error: DscError | None) -> None:
        nonlocal done
        done += 1
        what = f"failed: {error}" if error is not None else "done"
        err.print(f"[bold]study[/] {done}/{len(work)}: {escape(job.run.name)} {escape(what)}", highlight=False)
        if error is not None:
            failed(job.run, error)

    if executor == "slurm":
        folder = study.slurm.folder or study.spec.output / ".slurm"
        err.print(f"[bold]study[/] {len(work)} runs as a {study.slurm.cluster} job array (logs in "
                  f"{escape(str(folder))})", highlight=False)
        run_slurm(work, study.slurm, folder, on_done)
    else:
        n = min(jobs or default_jobs(), len(work))
        err.print(f"[bold]study[/] {len(work)} runs, {n} at a time in worker processes", highlight=False)
        run_processes(work, n, on_done)
    return failures
