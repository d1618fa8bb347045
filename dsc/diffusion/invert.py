"""``dsc invert``: the job around the token training of dsc/diffusion/inversion.py (docs/commands/invert.md).

It plans the classes and runs them as a ``dsc.jobs.Job`` (``TOKENS.lock``, the resume rule, the commit),
records provenance and commits the folder. Output goes to ``TOKENS.partial/``; each class's ``.safetensors``
and the manifest are written as soon as the class is done, so ``resume`` continues with the unfinished
classes. The folder is renamed when all are done.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsc.diffusion import inversion
from dsc.diffusion import tokens as T
from dsc.diffusion.inversion import ClassJob
from dsc.errors import InputError, MismatchError, ResourceError

if TYPE_CHECKING:
    from dsc.diffusion.models import SDComponents
    from dsc.jobs import Job, Record
    from dsc.settings import InvertSettings
    from dsc.store import Store

log = logging.getLogger(__name__)


def _classes(n: int) -> str:
    """``class`` or ``classes`` (messages about ``n`` classes)."""
    return "class" if n == 1 else "classes"

def _plan(store: Store, classes: list[str] | None) -> list[str]:
    names = store.classes
    if not names:
        raise InputError(f"{store.path} has no class names", hint="create DATA.h5 with `dsc subset`")
    if classes is None:
        return list(names)
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise InputError(f"unknown {_classes(len(unknown))}: {', '.join(unknown)}",
                         hint=f"{store.path} has: {', '.join(names)}")
    return [c for c in names if c in set(classes)]


def run_invert(data: Path, output: Path, settings: InvertSettings, *, classes: list[str] | None = None,
               resume: bool = False, force: bool = False, components: SDComponents | None = None,
               show_progress: bool = True, settings_sources: dict[str, str] | None = None) -> T.TokenManifest:
    """``dsc invert``: learn a token for each class of ``data`` (or of ``classes``) into ``output``/; with
    ``settings.method`` ``lora`` or ``ti+lora`` one LoRA (and tokens) for all of them (dsc/diffusion/lora_job.py).

    Returns the final manifest. ``components`` may be passed to reuse a loaded model (it must be the model
    named in ``settings``); tokens are installed into it (in several processes: this process's classes).

    Under ``accelerate launch``/``torchrun`` the classes still to learn are split over the processes (class
    ``i`` to rank ``i % world``; each token is independent of the others); the main process holds
    ``TOKENS.lock``, prepares ``TOKENS.partial/``, merges the other processes' entries into the manifest and
    commits. Token files are the same as one process writes. ``lora``/``ti+lora`` are one training, run
    data-parallel over the processes (dsc/diffusion/lora.py).
    """
    return _run_invert(data, output, settings, classes=classes, resume=resume, force=force,
                       components=components, show_progress=show_progress, settings_sources=settings_sources)


def _run_invert(data: Path, output: Path, settings: InvertSettings, *, classes: list[str] | None,
                resume: bool, force: bool, components: SDComponents | None, show_progress: bool,
                settings_sources: dict[str, str] | None) -> T.TokenManifest:
    from dsc.diffusion.lora_options import check_processes
    from dsc.jobs import Job, check_resume
    from dsc.provenance import Timings
    from dsc.store import open_store

    check_processes(settings)   # before the model is loaded
    timings = Timings()
    started = time.perf_counter()
    output = Path(output)
    store = open_store(data, kind="data")
    if store.evaluation_only:
        raise MismatchError(f"{data} is evaluation-only", hint="learn tokens from a DATA.h5 made by `dsc subset`")
    names = _plan(store, classes)
    if settings.crop_to_object and not store.has_masks:
        raise InputError(f"{data} has no object masks, so --crop-to-object cannot crop",
                         hint="drop --crop-to-object, or create DATA.h5 from a dataset with masks")
    jobs_all = []
    token_of = T.tokens_for_classes(store.classes)
    for name, rows in zip(names, select_class_rows(store, settings, names), strict=True):
        jobs_all.append(ClassJob(name, store.classes.index(name), token_of[name], rows))
    empty = [j.name for j in jobs_all if j.rows.size == 0]
    if empty:
        raise InputError(f"no train images for the {_classes(len(empty))} {', '.join(empty)}",
                         hint="pass --classes to leave them out, or add train images")

    job = Job("invert", output, force=force, resume=resume)
    if resume and not job.work.exists() and (output / T.MANIFEST).is_file():
        finished = T.load_manifest(output)
        if finished.complete and all(finished.has(j.name) for j in jobs_all):
            check_resume(output, _record(finished.settings, finished.data_fingerprint),
                         _record(settings.model_dump(mode="json"), store.fingerprint))
            log.info("%s already holds tokens for every requested class; nothing to do", output)
            finished.already_complete = True
            return finished
        if finished.complete and finished.lora:
            raise MismatchError(f"{output} holds a LoRA trained on {', '.join(finished.classes)}; a LoRA is trained "
                                "on all its classes at once, so classes cannot be added to it",
                                hint="pass --force to train one on these classes, or choose another --output")
    with job:  # TOKENS.lock, TOKENS.partial/, the resume rule and the commit: dsc/jobs.py
        job.check()
        return _learn(store, data, job, jobs_all, settings, components=components, show_progress=show_progress,
                      settings_sources=settings_sources, timings=timings, started=started)


def _learn(store: Store, data: Path, job: Job, jobs_all: list[ClassJob], settings: InvertSettings, *,
           components: SDComponents | None, show_progress: bool, settings_sources: dict[str, str] | None,
           timings: Any, started: float) -> T.TokenManifest:
    """Learn the tokens of ``jobs_all`` still missing (this process's share) in ``job``'s work folder; merge;
    commit."""
    from dsc import interrupts, parallel
    from dsc.console import progress
    from dsc.diffusion.models import load_components

    resumed = job.begin(marker=T.MANIFEST)
    partial = job.work
    with timings.stage("load_model"):
        if components is None:
            components = load_components(settings.model, revision=settings.revision,
                                         local_files_only=settings.local_files_only, device=settings.device,
                                         dtype=settings.dtype)
    manifest = _manifest(store, data, partial, settings, components, resumed=resumed,
                         settings_sources=settings_sources)
    if settings.method != "textual-inversion":  # one LoRA (and tokens) for all classes: dsc/diffusion/lora_job.py
        from dsc.diffusion.lora_job import learn_joint

        learn_joint(components, store, jobs_all, settings, manifest, timings=timings, show_progress=show_progress)
        store.close()
        manifest.timings = {**manifest.timings, **timings, "total": round(time.perf_counter() - started, 3)}
        return _commit(manifest, job)
    todo = _todo(manifest, jobs_all)
    mine = parallel.shard(todo)  # class i of the remaining ones goes to process i % world

    with parallel.together("learning tokens"), progress("step") as bar:
        task = bar.add_task("invert", total=len(mine) * settings.steps, status="",
                            visible=show_progress and parallel.is_main())
        for cls in mine:
            interrupts.check()  # a swallowed Ctrl-C stops before the next class (finished ones are kept)
            entry = _learn_class(components, store, cls, settings, partial, timings=timings, bar=bar, task=task)
            manifest.classes[cls.name] = entry
            manifest.timings = {**manifest.timings, **timings}
            if parallel.is_main():
                manifest.write()
            log.info("%s: %s learned, loss %.4f -> %.4f (%.1f s)", cls.name, cls.token,
                     float(np.mean(entry.loss[:5])), float(np.mean(entry.loss[-5:])), entry.seconds)
    store.close()
    _merge(manifest, mine, todo)
    manifest.timings = {**manifest.timings, **timings, "total": round(time.perf_counter() - started, 3)}
    return _commit(manifest, job)


def _manifest(store: Store, data: Path, partial: Path, settings: InvertSettings, components: SDComponents, *,
              resumed: bool, settings_sources: dict[str, str] | None) -> T.TokenManifest:
    """The manifest this run writes: the partial output's, checked against this run's inputs and settings,
    when an earlier run is continued (main process), else a new one; with this run's settings and provenance."""
    from dsc import parallel
    from dsc.provenance import provenance

    settings_json = settings.model_dump(mode="json")
    model_info = components.describe()
    data_info = {"path": str(Path(data).resolve()), "fingerprint": store.fingerprint}
    if parallel.is_main() and resumed:  # the main process checks and writes the manifest; the others learn
        manifest = _resumed_manifest(store, partial, settings_json, components)
    else:
        manifest = T.TokenManifest(directory=partial, classes={}, model=model_info, data=data_info,
                                   settings=settings_json, complete=False)
    manifest.settings = settings_json
    manifest.provenance = provenance(settings_json, sources=settings_sources or {},
                                     inputs={"data_fingerprint": store.fingerprint},
                                     effective_lr=inversion.learning_rate(settings))
    return manifest


def _resumed_manifest(store: Store, partial: Path, settings_json: dict[str, Any], components: SDComponents
                      ) -> T.TokenManifest:
    """The manifest of the partial output, refused (dsc/jobs.py's one rule) when made from another DATA.h5,
    model (its text encoder's fingerprint: the same weights may be named by a hub id or a folder) or settings."""
    from dsc.jobs import check_resume

    manifest = T.load_manifest(partial)
    check_resume(partial, _record(manifest.settings, manifest.data_fingerprint, manifest.text_fingerprint),
                 _record(settings_json, store.fingerprint, components.text_fingerprint()))
    manifest.complete = False
    manifest.timings = dict(manifest.timings)
    return manifest


def select_class_rows(store: Store, settings: InvertSettings, names: list[str] | None = None) -> list[np.ndarray]:
    """The train rows each class's token is learned from, in the order of ``names`` (default: every class):
    dsc's few-shot draw with ``examples_per_class`` and the draw's seed when asked."""
    return [inversion.select_examples(store, store.classes.index(n), settings.examples_per_class,
                                      settings.few_shot_draw_seed) for n in (names or store.classes)]


def _record(settings: dict[str, Any], data: str | None, model: str | None = None) -> Record:
    """What a resume of TOKENS/ must match: the settings but the model's name (the same weights may be named
    by a hub id or a folder), DATA.h5, and the text encoder's fingerprint when it is known (loaded)."""
    from dsc.jobs import Record, comparable
    from dsc.settings import InvertSettings

    view = {k: v for k, v in comparable(InvertSettings, settings).items() if k != "model"}
    return Record(view, {"data": data}, {"model": model} if model is not None else {})


def _todo(manifest: T.TokenManifest, jobs_all: list[ClassJob]) -> list[ClassJob]:
    """The classes still to learn (all processes agree); the main process writes the manifest first."""
    from dsc import parallel
    from dsc.console import count

    with parallel.together("checking the partial output"):
        done = [j.name for j in jobs_all if manifest.has(j.name)]
        if done:
            log.info("skipping %s: %s", count(len(done), "finished class", "finished classes"), ", ".join(done))
        if parallel.is_main():
            manifest.write()
    done = parallel.broadcast_object(done)
    return [j for j in jobs_all if j.name not in done]


def _learn_class(components: SDComponents, store: Store, job: ClassJob, settings: InvertSettings, partial: Path,
                 *, timings: Any, bar: Any, task: Any) -> T.ClassToken:
    """Learn one class's token into ``partial`` (its token file and validation grid); its manifest entry."""
    import torch

    from dsc import interrupts

    t0 = time.perf_counter()
    images = store.images(job.rows)
    crop = store.has_masks and settings.crop_to_object
    boxes = inversion.crop_boxes(store.read("masks", job.rows)) if crop else None
    with timings.stage("encode"):
        mean, std = inversion.class_latents(components, images, boxes, settings)
    bar.update(task, description=f"invert {job.name}")
    try:
        with timings.stage("train"):
            vectors, losses = inversion.train_class(
                components, job, mean, std, settings,
                on_step=lambda loss: (interrupts.check(), bar.update(task, advance=1, status=f"loss {loss:.4f}")))
    except torch.OutOfMemoryError:
        raise ResourceError(
            f"out of GPU memory while learning the token of {job.name}",
            hint="rerun with --resume and a smaller --batch-size, raising --gradient-accumulation so that "
                 "batch x accumulation stays the same (finished classes are kept)") from None
    file = job.token.strip("<>") + ".safetensors"
    sha = T.save_token_file(partial / file, job.token, vectors)
    grid = None
    if settings.validation_grids:
        with timings.stage("validation"):
            grid = f"{job.token.strip('<>')}.png"
            inversion.validation_grid(components, job.token, images, partial / grid, settings, name=job.name,
                                      rows=[int(r) for r in job.rows])
    seconds = round(time.perf_counter() - t0, 3)
    return T.ClassToken(
        token=job.token, file=file, sha256=sha, num_vectors=int(vectors.shape[0]), dim=int(vectors.shape[1]),
        initializer=inversion.initializer_text(settings.initializer, job.name), steps=settings.steps, loss=losses,
        seconds=seconds, validation_grid=grid, examples=[int(r) for r in job.rows],
        steps_per_second=round(settings.steps / max(seconds, 1e-9), 3), batch_size=settings.batch_size,
        gradient_accumulation=settings.gradient_accumulation)


def _merge(manifest: T.TokenManifest, jobs: list[ClassJob], todo: list[ClassJob]) -> None:
    """With several processes, the main process gathers every process's entries into ``manifest``."""
    from dsc import parallel

    if parallel.distributed():
        learned = parallel.gather_objects({j.name: manifest.classes[j.name] for j in jobs})
        if parallel.is_main():  # the order one process gives: earlier classes, then the learned ones in plan order
            for part in learned:
                manifest.classes.update(part)
            order = [n for n in manifest.classes if n not in {j.name for j in todo}] + [j.name for j in todo]
            manifest.classes = {n: manifest.classes[n] for n in order}


def _commit(manifest: T.TokenManifest, job: Job) -> T.TokenManifest:
    """Mark the manifest complete and rename the work folder to the output (main process); the final
    manifest."""
    from dsc import parallel

    def finish() -> None:
        manifest.complete = True
        manifest.write()

    job.commit(finish)
    manifest = parallel.broadcast_object(manifest) if parallel.distributed() else manifest
    manifest.directory = job.output
    manifest.complete = True
    return manifest
