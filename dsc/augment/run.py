"""``run_augment``: the resumable job around :class:`AugmentJob`. Its shell, one function per duty: the
start checks (``--force``, ``--resume``, an interrupted run), the output lock and resume check
(:func:`_prepare`), the plan record (:func:`_write_plan`), the generation loop (:func:`_generate`: one shard
per batch), the Ctrl-C message (:func:`_interrupted`) and the commit (:func:`_finish`: shards merged into the
store). Several processes (``accelerate launch``/``torchrun``) share the batches; the main one keeps the
books."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dsc import interrupts
from dsc.augment import shards
from dsc.augment.job import AugmentJob
from dsc.console import count, plural
from dsc.errors import Interrupted, MismatchError, OutputExistsError
from dsc.outputs import check_output
from dsc.settings import AugmentSettings

log = logging.getLogger(__name__)


@dataclass
class AugmentResult:
    """What ``run_augment`` made: the store, its image count, how many were generated now (the rest came
    from a resumed run's shards), speed, the per-class summary and the effective settings."""

    output: Path
    n_images: int
    n_generated: int
    resumed: bool
    seconds: float
    images_per_second: float
    summary: dict[str, dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)


def run_augment(data: Path, output: Path, settings: AugmentSettings, sources: dict[str, str] | None = None, *,
                force: bool = False, resume: bool = False, show_progress: bool = True,
                on_batch: Callable[[int, int], None] | None = None) -> AugmentResult:
    """Generate every planned image into ``output`` (a synthetic store); resumable.

    Each finished batch is saved atomically in ``AUG.h5.shards/`` (complete or absent, whatever kills the
    process); ``resume=True`` generates only the rows no shard holds; at the end the shards are merged in row
    order into the store (written as ``.partial``, then renamed) and removed. ``on_batch(done, total)`` is
    called after each batch is on disk (tests use it to simulate a crash).
    """
    from dsc import parallel

    with parallel.session():
        return _run_augment(data, output, settings, sources, force=force, resume=resume,
                            show_progress=show_progress, on_batch=on_batch)


def _run_augment(data: Path, output: Path, settings: AugmentSettings, sources: dict[str, str] | None, *,
                 force: bool, resume: bool, show_progress: bool,
                 on_batch: Callable[[int, int], None] | None) -> AugmentResult:
    """``run_augment`` inside a (possibly multi-process) session: under ``accelerate launch``/``torchrun`` each
    process generates the batch slots ``k`` with ``k % world == rank`` into the shared shards folder; the main
    process holds the lock, writes the plan and merges the shards after a barrier (the same store as one
    process makes, since every image has its own seeded generator)."""
    from dsc import parallel
    from dsc.locks import OutputLock
    from dsc.outputs import claim

    output = Path(output)
    folder = shards.shard_dir(output)
    with parallel.together("checking the inputs"):
        _check_start(output, folder, force=force, resume=resume)
        job = AugmentJob(data, settings, sources)
        claim(folder)  # a failure before the first batch leaves no AUG.h5.shards/ holding only plan.json
    start_time = time.perf_counter()
    lock = OutputLock(folder)  # one writer per output: a second command on the same AUG.h5 is refused
    try:
        resumed = _prepare(job, folder, lock, force=force, resume=resume)
        with parallel.together("loading the model"):
            job.load()
            if parallel.is_main() and not resumed:
                _write_plan(job, folder, output)
        total = len(job.plan)
        covered = np.zeros(total, dtype=bool)
        try:
            n_generated, rate = _generate(job, folder, covered, show_progress, on_batch)
        except KeyboardInterrupt:
            raise _interrupted(folder, covered, resumed) from None
        summary = _finish(job, folder, output, force)
    finally:
        lock.release()
    job.store.close()
    seconds = time.perf_counter() - start_time
    return AugmentResult(output, total, n_generated, resumed, seconds, rate, summary, job.s.model_dump(mode="json"))


def _check_start(output: Path, folder: Path, *, force: bool, resume: bool) -> None:
    """Refuse an existing output (without ``--force``), an interrupted run's shards (without ``--resume`` or
    ``--force``) and a resume of a complete store."""
    check_output(output, force=force, resume=resume)
    if folder.exists() and not (resume or force):
        raise OutputExistsError(f"an interrupted run left {folder}",
                                hint="pass --resume to continue it or --force to start over")
    if resume and output.exists() and not folder.exists():
        raise OutputExistsError(f"{output} is already complete", hint="nothing to resume; pass --force to recreate it")


def _prepare(job: AugmentJob, folder: Path, lock: Any, *, force: bool, resume: bool) -> bool:
    """Main process: take the lock, start over on ``--force``, check a resumed plan. Whether this run
    resumes (every process learns it)."""
    from dsc import parallel
    from dsc.outputs import remove

    resumed = False
    plan_file = folder / "plan.json"
    with parallel.together("preparing the output"):
        if parallel.is_main():
            lock.acquire()
            if force and not resume:
                remove(folder)
            resumed = plan_file.exists()
            if resumed:
                _check_same_plan(json.loads(plan_file.read_text()), job, folder)
    return bool(parallel.broadcast_object(resumed))


def _write_plan(job: AugmentJob, folder: Path, output: Path) -> None:
    """``plan.json``: what a resume must match (the plan hash, the resume settings, DATA.h5's fingerprint)."""
    from dsc.outputs import atomic_write_json

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "plan.json", {"plan_hash": job.plan_hash(), "output": str(output),
                                             "images": len(job.plan), "settings": job.resume_settings(),
                                             "data_fingerprint": job.store.fingerprint})


def _check_same_plan(recorded: dict[str, Any], job: AugmentJob, folder: Path) -> None:
    """Refuse to resume shards made by other settings or from another DATA.h5, naming what changed."""
    if recorded.get("plan_hash") == job.plan_hash():
        return
    old, new = recorded.get("settings"), job.resume_settings()
    changes = [f"{k}: {_show(old.get(k))} -> {_show(new.get(k))}" for k in sorted(set(old) | set(new))
               if old.get(k) != new.get(k)] if isinstance(old, dict) else []
    if recorded.get("data_fingerprint") not in (None, job.store.fingerprint):
        changes.append(f"DATA.h5: fingerprint {recorded['data_fingerprint']} -> {job.store.fingerprint}")
    what = "; ".join(changes) if changes else "other settings or another DATA.h5"
    raise MismatchError(f"cannot resume {folder}: it was started with {what}",
                        hint="resume with the original settings, or pass --force to start over")


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "none" if value is None else str(value)


def _interrupted(folder: Path, covered: np.ndarray, resumed: bool) -> Interrupted:
    """The Ctrl-C answer: how many images are kept in the shards and that ``--resume`` continues."""
    total = len(covered)
    for a, b, _ in shards.list_shards(folder):  # a shard saved just before the Ctrl-C counts too
        covered[a:min(b, total)] = True
    kept = int(covered.sum())
    if kept == 0 and not resumed:  # the empty shards folder is removed on the way out
        return Interrupted(f"no image was finished (0 of {total})", hint="rerun the same command to start again")
    return Interrupted(f"{kept} of {total} {plural(total, 'image')} kept in {folder}/",
                       hint=f"rerun the same command with --resume to generate the other {total - kept}")


def _finish(job: AugmentJob, folder: Path, output: Path, force: bool) -> dict[str, Any]:
    """Main process: merge the shards into the store and remove them; the summary, on every process."""
    from dsc import parallel
    from dsc.outputs import remove

    summary: dict[str, Any] = {}
    with parallel.together("assembling the store"):
        if parallel.is_main():
            with job.timings.stage("assemble"):
                summary = shards.assemble(job, folder, output, force, dict(job.timings))
            remove(folder)
    return parallel.broadcast_object(summary)


def _generate(job: AugmentJob, folder: Path, covered: np.ndarray, show_progress: bool,
              on_batch: Callable[[int, int], None] | None) -> tuple[int, float]:
    """Generate every row no shard holds (``covered`` is updated as shards land); returns how many rows
    were missing and the images/s of all processes together."""
    from dsc import parallel
    from dsc.console import progress

    total = len(job.plan)
    for a, b, _ in shards.list_shards(folder):
        covered[a:min(b, total)] = True
    done = int(covered.sum())
    if done:
        log.info("resuming: %d of %s already generated in %s", done, count(total, "image"), folder)
    slots = _my_slots(total, job.s.batch_size)
    mine = sum(min(slot + job.s.batch_size, total) - slot for slot in slots)
    cache: dict[int, Any] = {}
    generated_here = 0
    with parallel.together("generating"), progress(unit="img", transient=not show_progress) as bar:
        task = bar.add_task("augment", total=mine, completed=0, status="", visible=show_progress and parallel.is_main())
        for slot in slots:  # absolute batch slots: the same batches on every run and in every process
            stop_slot = min(slot + job.s.batch_size, total)
            rows = [r for r in range(slot, stop_slot) if not covered[r]]
            bar.advance(task, stop_slot - slot - len(rows))
            for start, stop in _runs(rows):
                interrupts.check()  # a swallowed Ctrl-C stops here: the shards kept so far are resumable
                cache = _generate_batch(job, folder, start, stop, cache)
                covered[start:stop] = True
                generated_here += stop - start
                bar.advance(task, stop - start)
                if on_batch is not None:
                    on_batch(int(covered.sum()), total)
    interrupts.check()  # never assemble a store after a Ctrl-C
    gen = job.timings.get("generate", 0.0)
    rate = sum(parallel.gather_objects(generated_here / gen if gen else 0.0))  # images/s of all processes
    job.timings["images_per_second"] = round(rate, 4)
    return total - done, rate


def _my_slots(total: int, batch_size: int) -> list[int]:
    """The first rows of the batch slots this process generates (slot ``k`` goes to rank ``k % world``)."""
    from dsc import parallel

    world, rank = parallel.world_size(), parallel.rank()
    return [slot for k, slot in enumerate(range(0, total, batch_size)) if k % world == rank]


def _generate_batch(job: AugmentJob, folder: Path, start: int, stop: int, cache: dict[int, Any]) -> dict[int, Any]:
    """Generate plan rows ``start:stop``, filter them (``--filter``) and save them as one shard; the
    encoded-source cache for the next batch."""
    batch = job.plan[start:stop]
    t0 = time.perf_counter()
    with job.timings.stage("generate"):
        images, prompts, cache = job.generate(batch, cache)
    with job.timings.stage("write"):
        cols = shards.batch_columns(job, batch, images, prompts)
    if job.filter is not None:
        with job.timings.stage("filter"):
            cols = shards.apply_filter(job, cols)
    with job.timings.stage("write"):
        shards.save_shard(folder, start, cols, time.perf_counter() - t0, end=stop)
    return cache


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of row numbers as (start, stop) pairs."""
    out: list[tuple[int, int]] = []
    for r in rows:
        if out and out[-1][1] == r:
            out[-1] = (out[-1][0], r + 1)
        else:
            out.append((r, r + 1))
    return out
