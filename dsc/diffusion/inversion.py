"""The token-training algorithm of `dsc invert` (textual inversion): learn one token (K vectors) per class on a
frozen Stable Diffusion. The job around it (lock, resume, partial output, commit) is dsc/diffusion/invert.py.

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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsc.diffusion import tokens as T
from dsc.errors import InputError, ResourceError

if TYPE_CHECKING:
    import torch

    from dsc.diffusion.models import SDComponents
    from dsc.settings import InvertSettings
    from dsc.store import Store

# ------------------------------------------------------------------------------------------------ data
def select_examples(store: Store, label: int, examples_per_class: int | None, seed: int) -> np.ndarray:
    """Train-split rows of one class; a seeded subset of ``examples_per_class`` of them when given."""
    from dsc.few_shot import class_rows

    return class_rows(store.labels, store.split, label, examples_per_class, seed)


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


def class_latents(components: SDComponents, images: np.ndarray, boxes: list | None, settings: InvertSettings
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """VAE posterior (mean, std) of a class's source ``images`` (cropped to ``boxes`` when given), with their
    mirror images after them when ``settings.flip`` is on."""
    import torch

    pixels = prepare_pixels(images, settings.resolution, boxes)
    if settings.flip:
        pixels = torch.cat([pixels, pixels.flip(-1)])
    return encode_latents(components, pixels, settings.batch_size)


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


def denoising_loss(c: SDComponents, noise_scheduler: Any, latents: torch.Tensor, input_ids: torch.Tensor,
                   noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """The training loss of Stable Diffusion (float32): the MSE of the UNet's prediction (epsilon or v, as
    ``noise_scheduler`` says) for ``latents`` (already scaled) noised with ``noise`` at ``timesteps``."""
    import torch
    import torch.nn.functional as F

    latents = latents.to(c.device, c.dtype)
    noise = noise.to(c.device, c.dtype)
    timesteps = timesteps.to(c.device)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    if c.device.type == "cuda":
        noisy = noisy.contiguous(memory_format=torch.channels_last)
    hidden = c.text_encoder(input_ids.to(c.device))[0]
    pred = c.unet(noisy, timesteps, hidden).sample
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    return F.mse_loss(pred.float(), target.float(), reduction="mean")


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
        return denoising_loss(self.c, self.noise_scheduler, latents, input_ids, noise, timesteps)

    def backward(self, loss: torch.Tensor, accumulation: int) -> None:
        scaled_backward(loss, accumulation, self.scaler)

    def update(self) -> None:
        """One optimizer step (constant learning rate after a linear warm-up)."""
        self.updates += 1
        warmed_step(self.optimizer, self.scaler, [self.lr], self.updates, self.warmup)


def scaled_backward(loss: torch.Tensor, accumulation: int, scaler: Any) -> None:
    """Backward of one micro-batch's share of the step (``loss / accumulation``), through the gradient scaler
    when there is one (CUDA float16)."""
    scaled = loss / accumulation
    (scaler.scale(scaled) if scaler is not None else scaled).backward()


def warmed_step(optimizer: Any, scaler: Any, base_lrs: list[float], updates: int, warmup: int) -> None:
    """One optimizer step, each group's learning rate ramped linearly over the first ``warmup`` updates
    (``updates`` counts this one), through the gradient scaler when there is one."""
    factor = min(1.0, updates / warmup) if warmup > 0 else 1.0
    lrs = base_lrs * len(optimizer.param_groups) if len(base_lrs) == 1 else base_lrs
    for group, base in zip(optimizer.param_groups, lrs, strict=True):
        group["lr"] = base * factor
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


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
        templ = torch.randint(0, self.n_templates, (batch_size,), generator=self.generator)
        shape = (batch_size, *self.mean.shape[1:])
        eps = torch.randn(shape, generator=self.generator)
        noise = torch.randn(shape, generator=self.generator)
        timesteps = torch.randint(0, self.num_train_timesteps, (batch_size,), generator=self.generator)
        return idx, self.prompts(idx, templ), eps, noise, timesteps

    @property
    def n_templates(self) -> int:
        """How many prompt templates a draw chooses from."""
        return int(self.prompt_ids.shape[0])

    def prompts(self, idx: list[int], templ: torch.Tensor) -> torch.Tensor:
        """Input ids of the drawn images: the class's prompt of each drawn template."""
        return self.prompt_ids[templ]

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
