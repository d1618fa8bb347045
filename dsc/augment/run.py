"""``run_augment``: :class:`AugmentJob` run as a ``dsc.jobs.Job`` (output checks, ``AUG.h5.shards.lock``, the
shards folder as the work folder, the resume rule, the Ctrl-C message). What is augment's own: the plan record
(:func:`_write_plan`, :func:`_check_same_plan`), the generation loop (:func:`_generate`: one shard per batch)
and the commit (:func:`_finish`: shards merged into the store). Several processes (``accelerate launch``/
``torchrun``) share the batches; the main one keeps the books."""

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
from dsc.console import count
from dsc.jobs import Job, Record, check_resume, comparable
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
    already_complete: bool = False  # --resume found the store complete and changed nothing


def run_augment(data: Path, output: Path, settings: AugmentSettings, sources: dict[str, str] | None = None, *,
                force: bool = False, resume: bool = False, show_progress: bool = True,
                on_batch: Callable[[int, int], None] | None = None) -> AugmentResult:
    """Generate every planned image into ``output`` (a synthetic store); resumable.

    Each finished batch is saved atomically in ``AUG.h5.shards/`` (complete or absent, whatever kills the
    process); ``resume=True`` generates only the rows no shard holds; at the end the shards are merged in row
    order into the store (written as ``.partial``, then renamed) and removed. ``resume=True`` on a complete
    store made with the same plan changes nothing (``already_complete``). ``on_batch(done, total)`` is
    called after each batch is on disk (tests use it to simulate a crash).

    The shell is a ``dsc.jobs.Job`` (session, ``AUG.h5.shards.lock``, the shards folder as its work folder, the
    resume rule): under ``accelerate launch``/``torchrun`` each process generates the batch slots ``k`` with
    ``k % world == rank`` into the shared shards folder; the main process writes the plan and merges the shards
    after a barrier (the same store as one process makes, since every image has its own seeded generator).
    """
    from dsc import parallel
    from dsc.outputs import claim

    output = Path(output)
    folder = shards.shard_dir(output)
    with Job("augment", output, force=force, resume=resume, work=folder, lock_on=folder) as job:
        with parallel.together("checking the inputs"):
            job.check()
            aug = AugmentJob(data, settings, sources)
            claim(folder)  # a failure before the first batch leaves no AUG.h5.shards/ holding only plan.json
        if resume and output.exists() and not folder.exists():
            return _already_complete(aug, output)
        start_time = time.perf_counter()
        resumed = job.begin(marker="plan.json")
        with parallel.together("loading the model"):
            if parallel.is_main() and resumed:
                _check_same_plan(json.loads((folder / "plan.json").read_text()), aug, folder)
            aug.load()
            if parallel.is_main() and not resumed:
                _write_plan(aug, folder, output)
        total = len(aug.plan)
        covered = np.zeros(total, dtype=bool)
        with job.interrupted(lambda: (_kept(folder, covered), total, "image")):
            n_generated, rate = _generate(aug, folder, covered, show_progress, on_batch)
        summary = _finish(aug, folder, output, force)
    aug.store.close()
    seconds = time.perf_counter() - start_time
    return AugmentResult(output, total, n_generated, resumed, seconds, rate, summary, aug.s.model_dump(mode="json"))


def _already_complete(aug: AugmentJob, output: Path) -> AugmentResult:
    """``--resume`` on a complete store: nothing to do when it was made with the same plan (settings, DATA.h5,
    every planned image), else refused by the one resume rule naming what changed."""
    from dsc.store import open_store

    with open_store(output, kind="synthetic") as store:
        attrs = dict(store.attrs)
        n = len(store)
    if attrs.get("plan_hash") != aug.plan_hash():
        recorded = attrs.get("settings") if isinstance(attrs.get("settings"), dict) else {}
        inputs = attrs.get("inputs") if isinstance(attrs.get("inputs"), dict) else {}
        check_resume(output, Record(comparable(AugmentSettings, recorded), {"data": inputs.get("data_fingerprint")},
                                    {"plan": attrs.get("plan_hash")}),
                     Record(aug.resume_settings(), {"data": aug.store.fingerprint}, {"plan": aug.plan_hash()}))
    aug.store.close()
    timings = attrs.get("timings") if isinstance(attrs.get("timings"), dict) else {}
    summary = attrs.get("summary") if isinstance(attrs.get("summary"), dict) else {}
    return AugmentResult(output, n, 0, True, 0.0, float(timings.get("images_per_second") or 0.0), summary,
                         aug.s.model_dump(mode="json"), already_complete=True)


def _write_plan(job: AugmentJob, folder: Path, output: Path) -> None:
    """``plan.json``: what a resume must match (the plan hash, the resume settings, DATA.h5's fingerprint)."""
    from dsc.outputs import atomic_write_json

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "plan.json", {"plan_hash": job.plan_hash(), "output": str(output),
                                             "images": len(job.plan), "settings": job.resume_settings(),
                                             "data_fingerprint": job.store.fingerprint})


def _check_same_plan(recorded: dict[str, Any], aug: AugmentJob, folder: Path) -> None:
    """Refuse to resume shards made by other settings or from another DATA.h5 (the one rule of dsc/jobs.py),
    naming what changed; the plan hash (every planned image) is compared when those agree."""
    if recorded.get("plan_hash") == aug.plan_hash():
        return
    old = recorded.get("settings") if isinstance(recorded.get("settings"), dict) else {}
    check_resume(folder, Record(old, {"data": recorded.get("data_fingerprint", aug.store.fingerprint)},
                                {"plan": recorded.get("plan_hash")}),
                 Record(aug.resume_settings(), {"data": aug.store.fingerprint}, {"plan": aug.plan_hash()}))


def _kept(folder: Path, covered: np.ndarray) -> int:
    """How many images are safe in the shards (a shard saved just before a Ctrl-C counts too)."""
    total = len(covered)
    for a, b, _ in shards.list_shards(folder):
        covered[a:min(b, total)] = True
    return int(covered.sum())


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
