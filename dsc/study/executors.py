"""Where a study's jobs execute (``dsc study --executor``): ``local``, one after another in this process (the
study's order); ``processes``, up to ``--jobs N`` at once on this machine, each in its own process pinned
to its share of the cores (or to one GPU); ``slurm``, one job per run in a job array submitted with submitit
(resources from the study's ``[slurm]`` table; a preempted or timed-out job is requeued and resumes). A job
is a run (its training and, for SupCon, its probe) or a stage the study builds (a token set or a synthetic
store); the jobs of one wave share nothing but their inputs, so they can run in any order. Results are the
output folders either way, which is why a study may move between executors midway: a rerun skips what is
complete and resumes what was interrupted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsc.errors import DscError
from dsc.study.spec import PlannedRun, Study
from dsc.study.stages import Stage

log = logging.getLogger("dsc.study")

EXECUTORS = ("local", "processes", "slurm")


@dataclass(frozen=True)
class RunJob:
    """One run with what it needs of its study (picklable, for another process)."""

    run: PlannedRun
    data: Path
    probe_settings: Any
    probe_sources: dict[str, str]
    eval_ood: list[Path]

    @staticmethod
    def of(study: Study, run: PlannedRun) -> RunJob:
        return RunJob(run, study.spec.data, study.probe_settings, study.probe_sources, list(study.spec.eval_ood))

    @property
    def name(self) -> str:
        return self.run.name

    def requeued(self) -> RunJob:
        """The run as a requeued cluster job continues it: resumed from its last checkpoint when it has one."""
        from dataclasses import replace

        from dsc.train.checkpoint import has_checkpoint

        action = "resume" if has_checkpoint(self.run.path, "last") else "run"
        return replace(self, run=replace(self.run, action=action, reason="requeued"))


@dataclass(frozen=True)
class StageJob:
    """One stage the study builds (tokens or a synthetic store: dsc/study/stages.py)."""

    stage: Stage

    @property
    def name(self) -> str:
        return self.stage.name

    def requeued(self) -> StageJob:
        from dsc.study.stage_build import requeued

        return StageJob(requeued(self.stage))


Work = RunJob | StageJob


def carry_out(job: Work) -> None:
    """Build a stage; or train (or resume) a run, then probe it when it is a SupCon run."""
    if isinstance(job, StageJob):
        from dsc.study.stage_build import build_stage

        build_stage(job.stage)
        return
    r = job.run
    if r.action in ("run", "resume"):
        kwargs = dict(synthetic=r.synthetic, negatives=r.negatives, sources=r.sources, force=r.action == "run",
                      resume=r.action == "resume")
        r.path.parent.mkdir(parents=True, exist_ok=True)
        if r.method == "ce":
            from dsc.train.baseline import baseline

            baseline(job.data, r.path, r.settings, **kwargs)
        else:
            from dsc.train.pretrain import pretrain

            pretrain(job.data, r.path, r.settings, **kwargs)
    if r.method == "supcon":
        from dsc.probe import probe

        settings = job.probe_settings.model_copy(update={"seed": r.settings.seed})  # the run's training seed
        probe(r.path, settings, ood=job.eval_ood, sources={**job.probe_sources, "seed": "the run's training seed"},
              force=True)


def shares(n: int, cpus: list[int], gpus: int = 0) -> list[dict[str, Any]]:
    """What each of ``n`` worker processes gets: a disjoint share of ``cpus`` (at least one each, round robin
    when there are fewer cores than workers) and, with GPUs, one of them."""
    n = max(1, n)
    cores = [cpus[i::n] if len(cpus) >= n else [cpus[i % len(cpus)]] for i in range(n)]
    return [{"cpus": c, "gpu": (i % gpus) if gpus else None} for i, c in enumerate(cores)]


def _start_worker(slots: Any, lock: Any, plan: list[dict[str, Any]]) -> None:
    """Pin this worker process to the next free share (before torch is imported) and keep it quiet: only
    warnings and errors, no progress bars (the study prints one line per run)."""
    with lock:
        index = slots.value
        slots.value += 1
    share = plan[index % len(plan)]
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, share["cpus"])
    from dsc.threads import THREAD_VARS

    for var in THREAD_VARS:
        os.environ[var] = str(len(share["cpus"]))
    if share["gpu"] is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(share["gpu"])
    from dsc import console

    console.err.quiet = True
    logging.basicConfig(level=logging.WARNING, format=f"[worker {index}] %(levelname)s %(message)s", force=True)


def _cpus() -> list[int]:
    from dsc.threads import affinity

    return sorted(affinity())


def run_processes(jobs: list[Work], n: int, on_done: Callable[[Work, DscError | None], None],
                  slots: int | None = None) -> None:
    """Carry out ``jobs`` in ``n`` worker processes, each pinned to one of ``slots`` (default ``n``) shares
    of the cores; ``on_done(job, error)`` as each finishes (``error``: the ``DscError`` it failed with; any
    other exception stops the study, as does an error ``on_done`` raises). Ctrl-C cancels what has not
    started; the workers stop too (the terminal sends them the Ctrl-C) and keep their work for the next run
    of the study."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from dsc.errors import ResourceError

    ctx = mp.get_context("spawn")
    plan = shares(max(n, slots or n), _cpus(), _gpu_count())
    slots, lock = ctx.Value("i", 0), ctx.Lock()
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_start_worker,
                             initargs=(slots, lock, plan)) as pool:
        pending = {pool.submit(carry_out, job): job for job in jobs}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    job = pending.pop(future)
                    exc = future.exception()
                    if isinstance(exc, BrokenProcessPool):   # a worker was killed (or ran out of memory)
                        raise ResourceError(f"a worker process died while running {job.name} (killed, or out of "
                                            "memory); the other workers were stopped",
                                            hint="rerun the same `dsc study`: what is complete is skipped, the "
                                            "rest resumes from its last checkpoint") from None
                    if exc is not None and not isinstance(exc, DscError):
                        raise exc
                    on_done(job, exc)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _gpu_count() -> int:
    """GPUs to spread workers over (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_jobs() -> int:
    """``--jobs`` by default: one worker per GPU, else one per two cores (at least one)."""
    gpus = _gpu_count()
    return gpus if gpus else max(1, len(_cpus()) // 2)


class SlurmRun:
    """A run as a submitit job: requeued on preemption or timeout, when it resumes from its last checkpoint
    (``checkpoint`` is what submitit calls then)."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads   # [slurm] cpus_per_task: the job computes with that many threads

    def __call__(self, job: Work) -> None:
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        carry_out(job)

    def checkpoint(self, job: Work) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(SlurmRun(self.threads), job.requeued())


def run_slurm(jobs: list[Work], spec: Any, folder: Path, on_done: Callable[[Work, DscError | None], None]) -> None:
    """Submit ``jobs`` as one submitit job array (``spec``: the study's ``[slurm]`` table) and wait for them,
    calling ``on_done`` as each ends (a failed job's error is its last line). Ctrl-C cancels the array."""
    try:
        import submitit
    except ImportError:
        from dsc.errors import InputError

        raise InputError("--executor slurm needs submitit", hint="pip install 'dsc[slurm]' (or pip install "
                         "submitit)") from None
    executor = submitit.AutoExecutor(folder=folder, cluster=None if spec.cluster == "slurm" else spec.cluster)
    executor.update_parameters(**spec.parameters())
    submitted = executor.map_array(SlurmRun(spec.cpus_per_task), jobs)
    log.info("submitted %d jobs (%s); logs in %s", len(submitted), submitted[0].job_id.split("_")[0]
             if submitted else "-", folder)
    by_id = {id(j): job for j, job in zip(submitted, jobs, strict=True)}
    try:
        for j in submitit.helpers.as_completed(submitted, poll_frequency=2 if spec.cluster == "local" else 30):
            on_done(by_id[id(j)], _job_error(j))
    except BaseException:
        for j in submitted:
            if not j.done():
                j.cancel(check=False)
        raise


def _job_error(job: Any) -> DscError | None:
    """None when the job succeeded, else a ``DscError`` whose message is the failure's last line."""
    try:
        job.result()
    except Exception as exc:  # noqa: BLE001 - submitit wraps the job's exception in its own with the traceback
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        return DscError(lines[-1] if lines else type(exc).__name__,
                        hint=f"the job's log: {getattr(job, 'paths', None) and job.paths.stderr}")
    return None
