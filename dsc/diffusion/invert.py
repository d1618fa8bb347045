"""Textual inversion: learn one token (K vectors) per class on a frozen Stable Diffusion.

How it works, and what it does differently from DA-Fusion's script:

* The model is loaded once; classes are learned one after another in the same process.
* Only the class's K vectors are trained. They live in a separate float32 parameter that a forward hook
  splices into the output of the text encoder's token-embedding layer at the token positions, so the
  embedding table itself gets no gradient and every other row stays bit-identical (no "restore the other rows
  after every step" needed). UNet, VAE and the rest of the text encoder are frozen. With K > 1 all K vectors
  (``<tok>``, ``<tok>_1`` ...) are in every prompt and all are trained (DA-Fusion trained only the first).
* Source images (train split only; ``examples_per_class`` picks a seeded few-shot subset) are VAE-encoded
  once, with their mirror images when ``flip`` is on. Each step samples latents from the stored posterior
  (``mean + std * noise``, the same distribution as ``latent_dist.sample()``), so the VAE never runs again.
* Everything random (examples, batches, templates, latent samples, noise, timesteps) comes from a
  ``torch.Generator`` seeded from (seed, class index): a class's result does not depend on which other classes
  are learned or on resuming.
* On GPU the model runs in float16/bfloat16 while the token vectors and the loss stay float32 (with a gradient
  scaler for float16). On CPU everything is float32.
* Output goes to ``TOKENS.partial/``; each class's ``.safetensors`` and the manifest are written as soon as the
  class is done, so ``resume`` continues with the unfinished classes. The folder is renamed when all are done.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsc.diffusion import tokens as T
from dsc.errors import InputError, MismatchError, OutputExistsError, ResourceError

if TYPE_CHECKING:
    import torch

    from dsc.diffusion.models import SDComponents
    from dsc.settings import InvertSettings
    from dsc.store import Store

log = logging.getLogger(__name__)


def _classes(n: int) -> str:
    """``class`` or ``classes`` (messages about ``n`` classes)."""
    return "class" if n == 1 else "classes"

#: Settings that must be equal for ``--resume`` to continue a partial output.
#: (``batch_size`` x ``gradient_accumulation`` must stay equal; their split may change, e.g. after running out of
#: GPU memory, and is recorded per class.)
RESUME_KEYS = ("model", "revision", "num_vectors", "initializer", "steps", "lr", "scale_lr", "effective_batch",
               "lr_warmup", "resolution", "examples_per_class", "crop_to_object", "templates", "flip", "seed")


# ------------------------------------------------------------------------------------------------ data
def select_examples(store: Store, label: int, examples_per_class: int | None, seed: int) -> np.ndarray:
    """Train-split rows of one class; a seeded subset of ``examples_per_class`` of them when given."""
    rows = np.flatnonzero((store.labels == label) & (store.split == "train"))
    if examples_per_class is not None and rows.size > examples_per_class:
        rng = np.random.default_rng([seed, label, 0x5E1EC7])
        rows = np.sort(rng.choice(rows, size=examples_per_class, replace=False))
    return rows


def crop_boxes(masks: np.ndarray, margin: float = 1 / 16) -> list[tuple[int, int, int, int] | None]:
    """Square boxes (top, left, bottom, right) around each mask's object, with a margin of ``margin`` times
    the image side (32 px at 512 px), clipped to the image. ``None`` where a mask is empty."""
    out: list[tuple[int, int, int, int] | None] = []
    for m in masks:
        ys, xs = np.nonzero(m > 0)
        if ys.size == 0:
            out.append(None)
            continue
        h, w = m.shape[:2]
        pad = max(1, round(margin * max(h, w)))
        top, bottom = max(0, ys.min() - pad), min(h, ys.max() + 1 + pad)
        left, right = max(0, xs.min() - pad), min(w, xs.max() + 1 + pad)
        side = min(max(bottom - top, right - left), h, w)
        cy, cx = (top + bottom) // 2, (left + right) // 2
        top = int(min(max(0, cy - side // 2), h - side))
        left = int(min(max(0, cx - side // 2), w - side))
        out.append((top, left, top + side, left + side))
    return out


def prepare_pixels(images: np.ndarray, resolution: int, boxes: list | None = None) -> torch.Tensor:
    """uint8 [n, H, W, 3] -> float32 [n, 3, R, R] in [-1, 1] (optional crops, antialiased bicubic resize)."""
    import torch
    import torch.nn.functional as F

    out = []
    for i, img in enumerate(images):
        box = boxes[i] if boxes is not None else None
        if box is not None:
            img = img[box[0]:box[2], box[1]:box[3]]
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        if x.shape[-2:] != (resolution, resolution):
            x = F.interpolate(x, size=(resolution, resolution), mode="bicubic", antialias=True,
                              align_corners=False)
        out.append(x.clamp(-1, 1))
    return torch.cat(out)


def encode_latents(components: SDComponents, pixels: torch.Tensor, batch_size: int = 8
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """VAE posterior mean and std of each image (float32, on the model's device), computed once."""
    import torch

    means, stds = [], []
    vae = components.vae
    with torch.no_grad():
        for start in range(0, pixels.shape[0], batch_size):
            x = pixels[start:start + batch_size].to(components.device, components.dtype)
            dist = vae.encode(x).latent_dist
            means.append(dist.mean.float())
            stds.append(dist.std.float())
    return torch.cat(means), torch.cat(stds)


# ------------------------------------------------------------------------------------------- tokens
def initial_vectors(components: SDComponents, text: str, num_vectors: int) -> torch.Tensor:
    """K start vectors from the embedding of ``text``'s tokens: its n tokens are split into K contiguous groups
    (each vector the mean of its group; with K > n tokens are repeated in order)."""
    tok = components.tokenizer
    ids = [i for i in tok(text, add_special_tokens=False).input_ids if i < components.base_vocab_size]
    if not ids:
        raise InputError(f"initializer {text!r} has no tokens in the model's vocabulary",
                         hint="use --initializer class-name or a common word such as 'object'")
    weight = components.text_encoder.get_input_embeddings().weight.detach().float()
    n = len(ids)
    rows = []
    for k in range(num_vectors):
        lo = k * n // num_vectors
        hi = max((k + 1) * n // num_vectors, lo + 1)
        rows.append(weight[ids[lo:hi]].mean(0))
    import torch

    return torch.stack(rows).cpu()


def initializer_text(initializer: str, class_name: str) -> str:
    """``class-name`` -> the class's name in words (underscores become spaces); anything else is used as is."""
    if initializer == "class-name":
        return class_name.replace("_", " ").replace("-", " ")
    return initializer


class TokenTrainer:
    """Trains the K vectors of one installed token; everything else stays frozen and untouched.

    The vectors are a float32 ``nn.Parameter``; a forward hook on the token-embedding layer replaces the rows
    looked up for the token's ids with them. ``step(latents, input_ids)`` runs one micro-batch and returns its
    loss (float); ``update()`` applies the accumulated gradient.
    """

    def __init__(self, components: SDComponents, token_ids: list[int], init: torch.Tensor, *, lr: float,
                 warmup: int = 0, weight_decay: float = 1e-2) -> None:
        import torch
        from diffusers import DDPMScheduler

        self.c = components
        self.ids = torch.tensor(token_ids, device=components.device)
        self.vectors = torch.nn.Parameter(init.detach().to(components.device, torch.float32).clone())
        self.noise_scheduler = DDPMScheduler.from_config(components.scheduler.config)
        self.num_train_timesteps = int(self.noise_scheduler.config.num_train_timesteps)
        self.prediction_type = self.noise_scheduler.config.prediction_type
        self.scaling = float(getattr(components.vae.config, "scaling_factor", 0.18215))
        self.optimizer = torch.optim.AdamW([self.vectors], lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay,
                                           eps=1e-8)
        self.lr = lr
        self.warmup = warmup
        self.updates = 0
        use_scaler = components.device.type == "cuda" and components.dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler) if use_scaler else None
        self._hook = components.text_encoder.get_input_embeddings().register_forward_hook(self._splice)
        self._input_ids: torch.Tensor | None = None

    def _splice(self, module: Any, args: Any, output: torch.Tensor) -> torch.Tensor:
        import torch

        input_ids = args[0] if args else self._input_ids
        match = input_ids[..., None] == self.ids  # [B, L, K]
        if not bool(match.any()):
            return output
        which = match.float().argmax(-1)  # index of the vector at each position
        hit = match.any(-1, keepdim=True)
        spliced = self.vectors.to(output.dtype)[which]
        return torch.where(hit, spliced, output)

    def close(self) -> None:
        """Remove the hook (the token rows of the table are written by the caller)."""
        self._hook.remove()

    def loss(self, latents: torch.Tensor, input_ids: torch.Tensor, noise: torch.Tensor,
             timesteps: torch.Tensor) -> torch.Tensor:
        """Diffusion loss (float32) of one micro-batch; ``latents`` already scaled."""
        import torch
        import torch.nn.functional as F

        c = self.c
        latents = latents.to(c.device, c.dtype)
        noise = noise.to(c.device, c.dtype)
        timesteps = timesteps.to(c.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if c.device.type == "cuda":
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        hidden = c.text_encoder(input_ids.to(c.device))[0]
        pred = c.unet(noisy, timesteps, hidden).sample
        if self.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        return F.mse_loss(pred.float(), target.float(), reduction="mean")

    def backward(self, loss: torch.Tensor, accumulation: int) -> None:
        scaled = loss / accumulation
        if self.scaler is not None:
            self.scaler.scale(scaled).backward()
        else:
            scaled.backward()

    def update(self) -> None:
        """One optimizer step (constant learning rate after a linear warm-up)."""
        self.updates += 1
        factor = min(1.0, self.updates / self.warmup) if self.warmup > 0 else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * factor
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


@dataclass
class ClassBatchSource:
    """Draws micro-batches for one class from its cached latents, with one generator."""

    mean: torch.Tensor
    std: torch.Tensor
    prompt_ids: torch.Tensor  # [T, L] token ids of every template with the class token expanded
    generator: torch.Generator
    scaling: float
    num_train_timesteps: int

    def __post_init__(self) -> None:
        self._order: list[int] = []

    def _next_indices(self, n: int) -> list[int]:
        import torch

        out = []
        while len(out) < n:
            if not self._order:  # epochs over the images, reshuffled each time
                self._order = torch.randperm(self.mean.shape[0], generator=self.generator).tolist()
            out.append(self._order.pop())
        return out

    def draw(self, batch_size: int) -> tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image indices, input ids, eps for the latent sample, noise, timesteps), all from the generator."""
        import torch

        idx = self._next_indices(batch_size)
        templ = torch.randint(0, self.prompt_ids.shape[0], (batch_size,), generator=self.generator)
        shape = (batch_size, *self.mean.shape[1:])
        eps = torch.randn(shape, generator=self.generator)
        noise = torch.randn(shape, generator=self.generator)
        timesteps = torch.randint(0, self.num_train_timesteps, (batch_size,), generator=self.generator)
        return idx, self.prompt_ids[templ], eps, noise, timesteps

    def latents(self, idx: list[int], eps: torch.Tensor) -> torch.Tensor:
        """A posterior sample of the chosen images, scaled like diffusers' training scripts."""
        i = torch_tensor(idx, self.mean.device)
        return (self.mean[i] + self.std[i] * eps.to(self.mean.device)) * self.scaling


def torch_tensor(values: list[int], device: Any) -> torch.Tensor:
    import torch

    return torch.tensor(values, dtype=torch.long, device=device)


def prompt_ids(components: SDComponents, token: str, template_list: tuple[str, ...]) -> torch.Tensor:
    """Token ids [T, max_length] of every template filled with the (expanded) class token."""
    tok = components.tokenizer
    prompts = [T.expand_prompt(t.format(token), tok) for t in template_list]
    return tok(prompts, padding="max_length", truncation=True, max_length=tok.model_max_length,
               return_tensors="pt").input_ids


# ------------------------------------------------------------------------------------------ one class
@dataclass
class ClassJob:
    name: str
    label: int
    token: str
    rows: np.ndarray


def learning_rate(settings: InvertSettings) -> float:
    """The effective lr: ``lr * batch_size * gradient_accumulation`` with ``scale_lr`` (DA-Fusion, diffusers)."""
    return settings.lr * (settings.batch_size * settings.gradient_accumulation if settings.scale_lr else 1)


def train_class(components: SDComponents, job: ClassJob, mean: torch.Tensor, std: torch.Tensor,
                settings: InvertSettings, *, on_step: Callable[[float], None] | None = None
                ) -> tuple[torch.Tensor, list[float]]:
    """Learn ``job.token`` from the cached latents; return its vectors [K, dim] (float32, CPU) and the loss of
    every optimizer step. The token stays installed in the model with the learned vectors."""
    import torch

    from dsc.diffusion.templates import templates

    init = initial_vectors(components, initializer_text(settings.initializer, job.name), settings.num_vectors)
    ids = T.add_token_vectors(components, job.token, init)
    trainer = TokenTrainer(components, ids, init, lr=learning_rate(settings), warmup=settings.lr_warmup)
    generator = torch.Generator().manual_seed(int(settings.seed) * 1_000_003 + job.label)
    source = ClassBatchSource(mean, std, prompt_ids(components, job.token, templates(settings.templates)),
                              generator, trainer.scaling, trainer.num_train_timesteps)
    losses: list[float] = []
    try:
        for _ in range(settings.steps):
            total = 0.0
            for _ in range(settings.gradient_accumulation):
                idx, input_ids, eps, noise, timesteps = source.draw(settings.batch_size)
                loss = trainer.loss(source.latents(idx, eps), input_ids, noise, timesteps)
                trainer.backward(loss, settings.gradient_accumulation)
                total += float(loss.detach())
            trainer.update()
            losses.append(round(total / settings.gradient_accumulation, 6))
            if not math.isfinite(losses[-1]):
                raise ResourceError(f"the loss of class {job.name} became {losses[-1]}",
                                    hint="lower --lr, or use --dtype float32 / bfloat16")
            if on_step is not None:
                on_step(losses[-1])
    finally:
        trainer.close()
    vectors = trainer.vectors.detach().float().cpu()
    T.add_token_vectors(components, job.token, vectors)
    return vectors, losses


# ---------------------------------------------------------------------------------- validation grids
def validation_grid(components: SDComponents, token: str, real: np.ndarray, path: Path,
                    settings: InvertSettings, *, name: str | None = None, rows: Sequence[int] = ()) -> None:
    """A figure: the class's real images (top row, labelled with their DATA.h5 ``rows``) over samples of
    "a photo of a <token>" (bottom row), every tile labelled with the class (``name``), what it is and its seed."""
    import torch
    from PIL import Image

    from dsc.report.figures.tiles import Tile, tile_label, write_tile_grid

    n = settings.validation_samples
    pipe = components.pipeline("StableDiffusionPipeline")
    res = settings.resolution
    seeds = [settings.seed * 7919 + i for i in range(n)]
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    with torch.no_grad():
        out = pipe([f"a photo of a {token}"] * n, height=res, width=res, num_inference_steps=settings.validation_steps,
                   generator=gens, output_type="np").images
    samples = (np.clip(out, 0, 1) * 255).round().astype(np.uint8)
    tiles = [np.asarray(Image.fromarray(im).convert("RGB").resize((res, res), Image.BICUBIC)) for im in real[:n]]
    name = name or token
    rows = list(rows)
    top = [Tile(im, tile_label(name, f"real image, row {rows[i]}" if i < len(rows) else "real image"))
           for i, im in enumerate(tiles)]
    bottom = [Tile(im, tile_label(name, "text-to-image", s)) for im, s in zip(samples, seeds, strict=True)]
    write_tile_grid(path, [top, bottom], title=f'{name}: real images, then "a photo of a {token}" '
                    f'({settings.validation_steps} steps)')


# ------------------------------------------------------------------------------------------- the job
def _settings_for_resume(settings: dict[str, Any]) -> dict[str, Any]:
    eff = (settings.get("batch_size") or 0) * (settings.get("gradient_accumulation") or 0)
    return {k: eff if k == "effective_batch" else settings.get(k) for k in RESUME_KEYS}


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


def _open_partial(output: Path, partial: Path, *, resume: bool, force: bool) -> bool:
    """Prepare the partial folder; True when an earlier run is continued."""
    from dsc.outputs import check_output, remove

    check_output(output, force=force, resume=resume)
    if resume:
        if partial.is_dir() and (partial / T.MANIFEST).is_file():
            return True
        if output.is_dir() and (output / T.MANIFEST).is_file():
            remove(partial)
            shutil.copytree(output, partial)  # add classes to a finished output
            return True
        log.info("nothing to resume in %s; starting fresh", output)
    elif partial.exists() and not force:
        raise OutputExistsError(f"an unfinished run exists at {partial}",
                                hint="pass --resume to continue it or --force to start over")
    remove(partial)
    partial.mkdir(parents=True)
    return False


def run_invert(data: Path, output: Path, settings: InvertSettings, *, classes: list[str] | None = None,
               resume: bool = False, force: bool = False, components: SDComponents | None = None,
               show_progress: bool = True, settings_sources: dict[str, str] | None = None) -> T.TokenManifest:
    """``dsc invert``: learn a token for each class of ``data`` (or of ``classes``) into ``output``/.

    Returns the final manifest. ``components`` may be passed to reuse a loaded model (it must be the model
    named in ``settings``); tokens are installed into it (in several processes: this process's classes).

    Under ``accelerate launch``/``torchrun`` the classes still to learn are split over the processes (class
    ``i`` to rank ``i % world``; each token is independent of the others); the main process holds
    ``TOKENS.lock``, prepares ``TOKENS.partial/``, merges the other processes' entries into the manifest and
    commits. Token files are the same as one process writes.
    """
    from dsc import parallel

    with parallel.session():
        return _run_invert(data, output, settings, classes=classes, resume=resume, force=force,
                           components=components, show_progress=show_progress, settings_sources=settings_sources)


def _run_invert(data: Path, output: Path, settings: InvertSettings, *, classes: list[str] | None,
                resume: bool, force: bool, components: SDComponents | None, show_progress: bool,
                settings_sources: dict[str, str] | None) -> T.TokenManifest:
    from dsc.outputs import OutputLock, partial_path
    from dsc.provenance import Timings
    from dsc.store import open_store

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
    for name in names:
        label = store.classes.index(name)
        rows = select_examples(store, label, settings.examples_per_class, settings.seed)
        jobs_all.append(ClassJob(name, label, token_of[name], rows))
    empty = [j.name for j in jobs_all if j.rows.size == 0]
    if empty:
        raise InputError(f"no train images for the {_classes(len(empty))} {', '.join(empty)}",
                         hint="pass --classes to leave them out, or add train images")

    partial = partial_path(output)
    if resume and not partial.exists() and (output / T.MANIFEST).is_file():
        finished = T.load_manifest(output)
        if finished.complete and all(j.name in finished.classes and finished.file(j.name).is_file()
                                     for j in jobs_all):
            log.info("%s already holds tokens for every requested class; nothing to do", output)
            return finished
    lock = OutputLock(output)  # TOKENS.lock: one writer per output (main process)
    try:
        return _learn(store, data, output, partial, jobs_all, settings, lock, resume=resume, force=force,
                      components=components, show_progress=show_progress, settings_sources=settings_sources,
                      timings=timings, started=started)
    finally:
        lock.release()


def _learn(store: Store, data: Path, output: Path, partial: Path, jobs_all: list[ClassJob],
           settings: InvertSettings, lock: Any, *, resume: bool, force: bool, components: SDComponents | None,
           show_progress: bool, settings_sources: dict[str, str] | None, timings: Any,
           started: float) -> T.TokenManifest:
    """Learn the tokens of ``jobs_all`` still missing (this process's share) under ``lock``; merge; commit."""
    import torch

    from dsc import parallel
    from dsc import interrupts
    from dsc.console import count, progress
    from dsc.diffusion.models import load_components
    from dsc.outputs import commit
    from dsc.provenance import provenance

    resumed = False
    with parallel.together("preparing the output"):
        if parallel.is_main():
            lock.acquire()
            resumed = _open_partial(output, partial, resume=resume, force=force)
    resumed = bool(parallel.broadcast_object(resumed))
    settings_json = settings.model_dump(mode="json")
    with timings.stage("load_model"):
        if components is None:
            components = load_components(settings.model, revision=settings.revision,
                                         local_files_only=settings.local_files_only, device=settings.device,
                                         dtype=settings.dtype)
    model_info = components.describe()
    data_info = {"path": str(Path(data).resolve()), "fingerprint": store.fingerprint}

    if not parallel.is_main():  # the main process checks and writes the manifest; the others learn their share
        manifest = T.TokenManifest(directory=partial, classes={}, model=model_info, data=data_info,
                                   settings=settings_json, complete=False)
    elif resumed:
        manifest = T.load_manifest(partial)
        if manifest.data_fingerprint != store.fingerprint:
            raise MismatchError(f"{partial} was made from another DATA.h5 ({manifest.data_fingerprint})",
                                hint="pass --force to start over")
        if manifest.text_fingerprint != components.text_fingerprint():
            raise MismatchError(f"{partial} was made with model {manifest.model_id}",
                                hint=f"resume with --model {manifest.model_id}, or pass --force")
        before = _settings_for_resume(manifest.settings)
        now_ = _settings_for_resume(settings_json)
        changed = [k for k in RESUME_KEYS if before.get(k) != now_.get(k) and k not in ("model",)]
        if changed:
            raise MismatchError(f"cannot resume {partial}: settings changed ({', '.join(changed)})",
                                hint="resume with the same settings, or pass --force to start over")
        manifest.complete = False
        manifest.timings = dict(manifest.timings)
    else:
        manifest = T.TokenManifest(directory=partial, classes={}, model=model_info, data=data_info,
                                   settings=settings_json, complete=False)
    manifest.settings = settings_json
    manifest.provenance = provenance(settings_json, sources=settings_sources or {},
                                     inputs={"data_fingerprint": store.fingerprint},
                                     effective_lr=learning_rate(settings))
    with parallel.together("checking the partial output"):
        done = [j.name for j in jobs_all if j.name in manifest.classes and manifest.file(j.name).is_file()]
        if done:
            log.info("skipping %s: %s", count(len(done), "finished class", "finished classes"), ", ".join(done))
        if parallel.is_main():
            manifest.write()
    done = parallel.broadcast_object(done)
    todo = [j for j in jobs_all if j.name not in done]
    jobs = parallel.shard(todo)  # class i of the remaining ones goes to process i % world

    masks_col = store.has_masks and settings.crop_to_object
    with parallel.together("learning tokens"), progress("step") as bar:
        task = bar.add_task("invert", total=len(jobs) * settings.steps, status="",
                            visible=show_progress and parallel.is_main())
        for job in jobs:
            interrupts.check()  # a swallowed Ctrl-C stops before the next class (finished ones are kept)
            t0 = time.perf_counter()
            images = store.images(job.rows)
            boxes = crop_boxes(store.read("masks", job.rows)) if masks_col else None
            with timings.stage("encode"):
                pixels = prepare_pixels(images, settings.resolution, boxes)
                if settings.flip:
                    pixels = torch.cat([pixels, pixels.flip(-1)])
                mean, std = encode_latents(components, pixels, settings.batch_size)
            bar.update(task, description=f"invert {job.name}")
            try:
                with timings.stage("train"):
                    vectors, losses = train_class(
                        components, job, mean, std, settings,
                        on_step=lambda loss: (interrupts.check(),
                                              bar.update(task, advance=1, status=f"loss {loss:.4f}")))
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
                    validation_grid(components, job.token, images, partial / grid, settings, name=job.name,
                                    rows=[int(r) for r in job.rows])
            seconds = round(time.perf_counter() - t0, 3)
            manifest.classes[job.name] = T.ClassToken(
                token=job.token, file=file, sha256=sha, num_vectors=int(vectors.shape[0]), dim=int(vectors.shape[1]),
                initializer=initializer_text(settings.initializer, job.name), steps=settings.steps, loss=losses,
                seconds=seconds, validation_grid=grid, examples=[int(r) for r in job.rows],
                steps_per_second=round(settings.steps / max(seconds, 1e-9), 3), batch_size=settings.batch_size,
                gradient_accumulation=settings.gradient_accumulation)
            manifest.timings = {**manifest.timings, **timings}
            if parallel.is_main():
                manifest.write()
            log.info("%s: %s learned, loss %.4f -> %.4f (%.1f s)", job.name, job.token,
                     float(np.mean(losses[:5])), float(np.mean(losses[-5:])), seconds)
    store.close()
    if parallel.distributed():
        learned = parallel.gather_objects({j.name: manifest.classes[j.name] for j in jobs})
        if parallel.is_main():  # the order one process gives: earlier classes, then the learned ones in plan order
            for part in learned:
                manifest.classes.update(part)
            order = [n for n in manifest.classes if n not in {j.name for j in todo}] + [j.name for j in todo]
            manifest.classes = {n: manifest.classes[n] for n in order}
    manifest.timings = {**manifest.timings, **timings, "total": round(time.perf_counter() - started, 3)}
    interrupts.check()  # never commit TOKENS/ after a Ctrl-C
    with parallel.together("committing the output"):
        if parallel.is_main():
            manifest.complete = True
            manifest.write()
            commit(partial, output)
    manifest = parallel.broadcast_object(manifest) if parallel.distributed() else manifest
    manifest.directory = output
    manifest.complete = True
    return manifest
