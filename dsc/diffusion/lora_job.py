"""The ``lora`` / ``ti+lora`` part of the `dsc invert` job (dsc/diffusion/invert.py calls ``learn_joint``).

One training over all classes (dsc/diffusion/lora.py; data-parallel over the processes of a multi-process
launch, the main process writing) inside the job's ``TOKENS.partial/``: each class's
images are VAE-encoded once, the LoRA (and tokens) train with a checkpoint every ``lora.CHECKPOINT_EVERY``
steps in ``TOKENS.partial/checkpoints/``, then the LoRA file, the token files (``ti+lora``), the manifest
entries and the validation grids are written and the checkpoint is removed before the folder is committed.
"""

from __future__ import annotations

import logging
import shutil
import time
from typing import TYPE_CHECKING, Any

from dsc.diffusion import inversion, lora
from dsc.diffusion import tokens as T
from dsc.diffusion.inversion import ClassJob
from dsc.diffusion.lora_options import check_targets
from dsc.diffusion.prior import PRIOR_FILE
from dsc.errors import ResourceError

if TYPE_CHECKING:
    from dsc.diffusion.models import SDComponents
    from dsc.settings import InvertSettings
    from dsc.store import Store

log = logging.getLogger(__name__)


def _finished(manifest: T.TokenManifest, plan: list[str]) -> bool:
    """An earlier run wrote the LoRA and every entry but was stopped before the commit."""
    return bool(manifest.lora) and manifest.lora.get("classes") == plan and all(manifest.has(n) for n in plan)


def _resumed_step(work: Any) -> int:
    from dsc.train.checkpoint import has_checkpoint, read_checkpoint_info

    return int(read_checkpoint_info(work, lora.CHECKPOINT)["step"]) if has_checkpoint(work, lora.CHECKPOINT) else 0


def learn_joint(components: SDComponents, store: Store, jobs: list[ClassJob], settings: InvertSettings,
                manifest: T.TokenManifest, *, timings: Any, show_progress: bool) -> None:
    """Train one LoRA (and with ``ti+lora`` a token per class) on ``jobs``' images into the manifest's folder;
    fill ``manifest.classes`` and ``manifest.lora`` and write the manifest."""
    import torch

    from dsc import interrupts, parallel
    from dsc.console import progress

    check_targets(components.unet, settings.lora_targets)  # a typo fails before any work
    work = manifest.directory
    plan = [j.name for j in jobs]
    if parallel.broadcast_object(_finished(manifest, plan)):  # the main process's manifest decides for all
        if parallel.is_main():
            log.info("%s already holds the trained LoRA; committing it", work)
            shutil.rmtree(work / "checkpoints", ignore_errors=True)
            (work / PRIOR_FILE).unlink(missing_ok=True)
        return
    manifest.classes, manifest.lora = {}, None
    if parallel.is_main():
        manifest.write()  # the marker `--resume` looks for; the checkpoints carry the training's progress
    parallel.barrier()
    crop = store.has_masks and settings.crop_to_object
    images = {j.name: store.images(j.rows) for j in jobs}
    with timings.stage("encode"):
        latents = [inversion.class_latents(components, images[j.name], inversion.crop_boxes(
            store.read("masks", j.rows)) if crop else None, settings) for j in jobs]
    prior, prior_latents = None, None
    if settings.prior_preservation:  # class images of the frozen model, before the LoRA exists
        from dsc.diffusion import prior as P

        with timings.stage("prior"), progress("image") as bar:
            task = bar.add_task("prior images", total=settings.prior_images * len(jobs), status="",
                                visible=show_progress and parallel.is_main())
            prior = P.prior_images(components, jobs, settings, work, on_batch=lambda n: bar.update(task, advance=n))
        with timings.stage("encode"):
            prior_latents = P.prior_latents(components, prior, settings)
    start = _resumed_step(work)
    t0 = time.perf_counter()
    with parallel.together("training the LoRA"), progress("step") as bar:
        task = bar.add_task(f"invert ({settings.method})", total=settings.steps, completed=start, status="",
                            visible=show_progress and parallel.is_main())
        try:
            with timings.stage("train"):
                result = lora.train_joint(
                    components, jobs, latents, settings, work, prior=prior_latents,
                    on_step=lambda loss: (interrupts.check(), bar.update(task, advance=1, status=f"loss {loss:.4f}")))
        except torch.OutOfMemoryError:
            raise ResourceError(f"out of GPU memory while training the LoRA ({settings.method})",
                                hint="rerun with --resume and a smaller --batch-size, raising --gradient-accumulation "
                                     "so that batch x accumulation stays the same (the last checkpoint is kept)"
                                ) from None
    seconds = round(time.perf_counter() - t0, 3)
    with parallel.together("writing the LoRA"):
        if parallel.is_main():  # every process holds the same LoRA and tokens: one writes them
            _write_outputs(components, jobs, images, settings, manifest, result, seconds, timings, prior)


def _write_outputs(components: SDComponents, jobs: list[ClassJob], images: dict[str, Any], settings: InvertSettings,
                   manifest: T.TokenManifest, result: lora.JointResult, seconds: float, timings: Any,
                   prior: dict[str, Any] | None = None) -> None:
    """The LoRA file, token files, manifest entries and validation grids; the checkpoint and the prior images
    removed (tokens.json records the prior images' hash)."""
    work = manifest.directory
    for job in jobs:
        slug = job.token.strip("<>")
        entry = T.ClassToken(token=lora.class_words(job.name), file="", sha256="", num_vectors=0, dim=0,
                             steps=settings.steps, examples=[int(r) for r in job.rows],
                             batch_size=settings.batch_size, gradient_accumulation=settings.gradient_accumulation)
        if job.name in result.vectors:  # ti+lora: the class's learned token, a stock textual-inversion file
            vectors = result.vectors[job.name]
            entry.token, entry.file = job.token, slug + ".safetensors"
            entry.sha256 = T.save_token_file(work / entry.file, job.token, vectors)
            entry.num_vectors, entry.dim = int(vectors.shape[0]), int(vectors.shape[1])
            entry.initializer = inversion.initializer_text(settings.initializer, job.name)
        manifest.classes[job.name] = entry
    sha = lora.save_lora(work, components)
    ran = settings.steps - result.resumed_from
    params = sum(p.numel() for n, p in components.unet.named_parameters() if ".lora_" in n)
    manifest.lora = {"file": lora.LORA_FILE, "sha256": sha, "method": settings.method, "rank": settings.lora_rank,
                     "alpha": lora.alpha(settings), "targets": list(settings.lora_targets), "text_encoder": False,
                     "parameters": int(params), "classes": [j.name for j in jobs], "steps": settings.steps,
                     "loss": result.losses, "seconds": seconds, "resumed_from": result.resumed_from,
                     "steps_per_second": round(ran / max(seconds, 1e-9), 3), "batch_size": settings.batch_size,
                     "gradient_accumulation": settings.gradient_accumulation}
    if prior is not None:
        from dsc.diffusion import prior as P

        manifest.lora["prior"] = P.record(prior, settings)
    if settings.validation_grids:
        with timings.stage("validation"):
            for job in jobs:
                entry = manifest.classes[job.name]
                entry.validation_grid = job.token.strip("<>") + ".png"
                inversion.validation_grid(components, entry.token, images[job.name], work / entry.validation_grid,
                                          settings, name=job.name, rows=[int(r) for r in job.rows])
    manifest.write()
    shutil.rmtree(work / "checkpoints", ignore_errors=True)
    (work / PRIOR_FILE).unlink(missing_ok=True)
    log.info("LoRA (%s, rank %d) trained on %d classes: loss %.4f -> %.4f (%.1f s)", settings.method,
             settings.lora_rank, len(jobs), _mean(result.losses[:5]), _mean(result.losses[-5:]), seconds)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
