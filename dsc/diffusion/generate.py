"""Batched image-to-image (SDEdit), masked and text-to-image generation, faithful to stock diffusers pipelines.

One call denoises many synthetic images at once: several source images x variants, each with its own
``torch.Generator`` and its own strength. The result for one image is what stock
``StableDiffusionImg2ImgPipeline`` (no mask), ``StableDiffusionInpaintPipeline`` (mask) or, for a source-free
request (``blank_source``: no image, pure noise start), ``StableDiffusionPipeline`` returns for that image alone
with the same prompt embeddings, generator and scheduler (tests/diffusion/test_generate*.py check this image
for image). What differs is only how the work is shared:

- each source image is VAE-encoded once (``encode_source``); its posterior (mean, std) is kept and every
  variant draws its own latent sample from it with its own generator, as the stock pipeline's
  ``latent_dist.sample(generator)`` does;
- prompt embeddings are computed by the caller once per class and only gathered here;
- images with different strengths share the UNet calls: strength decides at which index of the common
  timestep list an image starts (``get_timesteps`` of the stock pipelines), so at every step all active
  images sit at the same timestep. Each strength group keeps its own copy of the scheduler, because
  multistep schedulers (PNDM, DPM-Solver) keep per-trajectory history;
- classifier-free guidance runs unconditional and conditional halves in one UNet call.

Masks: a UNet with 4 input channels is edited inside the mask by latent blending (the stock inpaint
pipeline's path for non-inpainting models, as DA-Fusion uses it); a 9-channel inpainting UNet gets the mask
and the masked-image latents as extra channels. After decoding, pixels outside the edit mask are copied
from the source (``paste=True``), so they are exactly unchanged.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from dsc.errors import ConfigError


@dataclass
class Source:
    """One source image, VAE-encoded once; all its variants reuse the posterior (``free``: no image at all)."""

    pixels: np.ndarray | None  # uint8 [H, W, 3], what pasting copies from (None when ``free``)
    mean: torch.Tensor  # [1, C, h, w] VAE posterior mean
    std: torch.Tensor  # [1, C, h, w]
    edit_mask: np.ndarray | None = None  # bool [H, W]: True where pixels may change
    latent_mask: torch.Tensor | None = None  # [1, 1, h, w] float 0/1
    masked_mean: torch.Tensor | None = None  # posterior of the masked image (9-channel UNets only)
    masked_std: torch.Tensor | None = None
    free: bool = False  # source-free (text-to-image): ``mean`` only gives the latent shape


def blank_source(vae: Any, unet: Any, size: int) -> Source:
    """The stand-in source of a text-to-image request: no pixels, the latent shape of a ``size`` px image.

    Its images start from pure noise scaled by ``init_noise_sigma`` and run every step, as the stock
    ``StableDiffusionPipeline`` (``prepare_latents``) does; the generator draws only that noise.
    """
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    zeros = torch.zeros((1, int(unet.config.in_channels), size // scale, size // scale), device=unet.device,
                        dtype=unet.dtype)
    return Source(pixels=None, mean=zeros, std=zeros, free=True)


@dataclass
class Request:
    """One synthetic image to make."""

    source: Source
    cond: torch.Tensor  # [L, D] prompt embedding
    uncond: torch.Tensor  # [L, D] negative / unconditional embedding
    strength: float
    generator: torch.Generator
    masked_x0: torch.Tensor | None = None  # set by ``denoise`` for 9-channel UNets


@dataclass
class _Group:
    """Images sharing one strength: one scheduler copy, one start index into the timesteps."""

    start: int
    scheduler: Any
    members: list[int]
    latents: torch.Tensor | None = None
    x0: torch.Tensor | None = None
    noise: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _randn(shape: tuple[int, ...], generator: torch.Generator, device: torch.device,
           dtype: torch.dtype) -> torch.Tensor:
    from diffusers.utils.torch_utils import randn_tensor

    return randn_tensor(shape, generator=generator, device=device, dtype=dtype)


def to_model_input(pixels: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 [H, W, 3] -> [1, 3, H, W] in [-1, 1] (the stock image processor's arithmetic)."""
    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None].float() / 255.0
    return (2.0 * x - 1.0).to(device=device, dtype=dtype)


@torch.no_grad()
def encode_source(vae: Any, pixels: np.ndarray, edit_mask: np.ndarray | None = None,
                  masked_latents: bool = False) -> Source:
    """VAE-encode one image (batch of one, so the result never depends on its neighbours)."""
    device, dtype = vae.device, vae.dtype
    x = to_model_input(pixels, device, dtype)
    dist = vae.encode(x).latent_dist
    src = Source(pixels=pixels, mean=dist.mean, std=dist.std)
    if edit_mask is not None:
        m = torch.from_numpy(edit_mask.astype(np.float32))[None, None]
        h, w = dist.mean.shape[-2:]
        src.edit_mask = edit_mask.astype(bool)
        src.latent_mask = torch.nn.functional.interpolate(m, size=(h, w)).to(device=device, dtype=dtype)
        if masked_latents:
            masked = x * (m.to(device=device, dtype=dtype) < 0.5)
            mdist = vae.encode(masked).latent_dist
            src.masked_mean, src.masked_std = mdist.mean, mdist.std
    return src


def start_index(steps: int, strength: float, order: int = 1) -> int:
    """Index into the scheduler's timesteps where an image of this strength starts (stock get_timesteps)."""
    init = min(int(steps * strength), steps)
    return max(steps - init, 0) * order


def check_strength(steps: int, strength: float) -> None:
    """At least one denoising step must run: int(steps * strength) >= 1."""
    if not 0.0 < strength <= 1.0:
        raise ConfigError(f"strength {strength} is outside (0, 1]", hint="pass values like 0.25,0.5,0.75,1.0")
    if int(steps * strength) < 1:
        raise ConfigError(f"strength {strength} with {steps} {'step' if steps == 1 else 'steps'} runs no denoising "
                          "step",
                          hint=f"use a strength >= {1 / steps:.3g} or more --steps")


def _step_kwargs(scheduler: Any, generators: list[torch.Generator]) -> dict[str, Any]:
    params = set(inspect.signature(scheduler.step).parameters)
    out: dict[str, Any] = {}
    if "eta" in params:
        out["eta"] = 0.0
    if "generator" in params:
        out["generator"] = generators
    return out


@dataclass
class _Loop:
    """What every step of one ``denoise`` call shares."""

    requests: list[Request]
    timesteps: torch.Tensor
    device: torch.device
    dtype: torch.dtype
    nine: bool  # a 9-channel inpainting UNet
    inpaint: bool
    cfg: bool  # classifier-free guidance
    guidance: float
    scaling: float


def _check_requests(unet: Any, requests: list[Request], inpaint: bool) -> None:
    if not requests:
        raise ValueError("no requests")
    if unet.config.in_channels == 9 and not inpaint:
        raise ConfigError("this model has an inpainting UNet (9 input channels)",
                          hint="use --mask object or background, or a non-inpainting model")
    if inpaint and any(r.source.latent_mask is None for r in requests):
        raise ValueError("inpainting requests need sources encoded with an edit mask")
    if any(r.source.free and r.strength != 1.0 for r in requests):
        raise ValueError("source-free (text-to-image) requests run at strength 1.0")


def _strength_groups(base: Any, requests: list[Request], steps: int) -> dict[tuple[float, bool], _Group]:
    """One group per strength (source-free requests apart), each with its own scheduler copy starting at its own
    index (text-to-image: index 0 and no begin index, as the stock text-to-image pipeline)."""
    order = getattr(base, "order", 1)
    groups: dict[tuple[float, bool], _Group] = {}
    for i, req in enumerate(requests):
        check_strength(steps, req.strength)
        key = (req.strength, req.source.free)
        if key not in groups:
            start = 0 if req.source.free else start_index(steps, req.strength, order)
            sched = copy.deepcopy(base)
            if hasattr(sched, "set_begin_index") and not req.source.free:
                sched.set_begin_index(start)
            groups[key] = _Group(start, sched, [])
        groups[key].members.append(i)
    return groups


def _start_noise(run: _Loop, g: _Group) -> None:
    """A source-free group: pure noise times ``init_noise_sigma`` (stock ``prepare_latents``), one draw each."""
    reqs = [run.requests[i] for i in g.members]
    shape = tuple(reqs[0].source.mean.shape[1:])
    g.noise = torch.cat([_randn((1, *shape), r.generator, run.device, run.dtype) for r in reqs])
    g.x0 = torch.zeros_like(g.noise)
    g.latents = g.noise * g.scheduler.init_noise_sigma
    g.extra = _step_kwargs(g.scheduler, [r.generator for r in reqs])


def _start_latents(run: _Loop, g: _Group, strength: float) -> None:
    """Draw a group's clean latents and noise and noise them to its start timestep."""
    reqs = [run.requests[i] for i in g.members]
    if reqs[0].source.free:
        _start_noise(run, g)
        return
    shape = tuple(reqs[0].source.mean.shape[1:])
    device, dtype = run.device, run.dtype
    x0, noise = [], []
    # per image, in the stock pipelines' order: VAE sample, noise, (masked-image sample); the stock
    # inpaint pipeline with a 9-channel UNet skips the VAE sample at strength 1 (pure noise start)
    skip_sample = run.nine and strength == 1.0
    for r in reqs:
        if skip_sample:
            x0.append(torch.zeros((1, *shape), device=device, dtype=dtype))
        else:
            sample = _randn((1, *shape), r.generator, device, dtype)
            x0.append(run.scaling * (r.source.mean + r.source.std * sample))
        noise.append(_randn((1, *shape), r.generator, device, dtype))
        if run.inpaint:  # the stock inpaint pipeline also samples the masked image's latents
            extra = _randn((1, *shape), r.generator, device, dtype)
            if run.nine:
                r.masked_x0 = run.scaling * (r.source.masked_mean + r.source.masked_std * extra)
    g.x0, g.noise = torch.cat(x0), torch.cat(noise)
    t0 = run.timesteps[g.start:g.start + 1].repeat(len(reqs))
    if run.inpaint and strength == 1.0:
        g.latents = g.noise * g.scheduler.init_noise_sigma
    else:
        g.latents = g.scheduler.add_noise(g.x0, g.noise, t0)
    g.extra = _step_kwargs(g.scheduler, [r.generator for r in reqs])


def _predict_noise(run: _Loop, unet: Any, active: list[_Group], t: torch.Tensor) -> torch.Tensor:
    """One UNet call for every active image (both guidance halves), guidance applied."""
    xs = [g.scheduler.scale_model_input(g.latents, t) for g in active]
    members = [run.requests[j] for g in active for j in g.members]
    x = torch.cat(xs)
    if run.nine:
        mask = torch.cat([r.source.latent_mask for r in members])
        masked = torch.cat([r.masked_x0 for r in members])
        x = torch.cat([x, mask, masked], dim=1)
    cond = torch.stack([r.cond for r in members]).to(device=run.device, dtype=run.dtype)
    if run.cfg:
        uncond = torch.stack([r.uncond for r in members]).to(device=run.device, dtype=run.dtype)
        x, emb = torch.cat([x, x]), torch.cat([uncond, cond])
    else:
        emb = cond
    pred = unet(x, t, encoder_hidden_states=emb, return_dict=False)[0]
    if run.cfg:
        pred_uncond, pred_text = pred.chunk(2)
        pred = pred_uncond + run.guidance * (pred_text - pred_uncond)
    return pred


def _step_groups(run: _Loop, active: list[_Group], pred: torch.Tensor, i: int, t: torch.Tensor) -> None:
    """Each group's scheduler step; with a 4-channel UNet and a mask, keep the source outside it."""
    for g, p in zip(active, pred.split([len(g.members) for g in active]), strict=True):
        g.latents = g.scheduler.step(p, t, g.latents, **g.extra, return_dict=False)[0]
        if run.inpaint and not run.nine:
            proper = g.x0
            if i < len(run.timesteps) - 1:
                proper = g.scheduler.add_noise(g.x0, g.noise, torch.tensor([run.timesteps[i + 1]]))
            m = torch.cat([run.requests[j].source.latent_mask for j in g.members])
            g.latents = (1 - m) * proper + m * g.latents


@torch.no_grad()
def denoise(vae: Any, unet: Any, scheduler: Any, requests: list[Request], *, steps: int, guidance: float,
            inpaint: bool = False) -> torch.Tensor:
    """Generate ``requests`` in one batched loop; float images [B, 3, H, W] in [0, 1] (before pasting)."""
    _check_requests(unet, requests, inpaint)
    base = copy.deepcopy(scheduler)
    base.set_timesteps(steps, device=unet.device)
    run = _Loop(requests, base.timesteps, unet.device, unet.dtype, nine=unet.config.in_channels == 9,
                inpaint=inpaint, cfg=guidance > 1 and unet.config.time_cond_proj_dim is None,
                guidance=guidance, scaling=vae.config.scaling_factor)
    groups = _strength_groups(base, requests, steps)
    for (strength, _free), g in groups.items():
        _start_latents(run, g, strength)

    ordered = sorted(groups.values(), key=lambda g: g.start)
    for i, t in enumerate(run.timesteps):
        active = [g for g in ordered if g.start <= i]
        if active:
            _step_groups(run, active, _predict_noise(run, unet, active, t), i, t)

    latents = torch.empty((len(requests), *ordered[0].latents.shape[1:]), device=run.device, dtype=run.dtype)
    for g in ordered:
        latents[g.members] = g.latents
    images = vae.decode(latents / run.scaling, return_dict=False)[0]
    return (images / 2 + 0.5).clamp(0, 1)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] floats in [0, 1] -> uint8 [B, H, W, 3] (the stock ``numpy_to_pil`` rounding)."""
    arr = images.detach().cpu().permute(0, 2, 3, 1).float().numpy()
    return (arr * 255).round().astype(np.uint8)


def paste(generated: np.ndarray, requests: list[Request]) -> np.ndarray:
    """Copy source pixels back outside each request's edit mask (exactly unchanged there)."""
    out = generated.copy()
    for k, r in enumerate(requests):
        if r.source.edit_mask is not None:
            keep = ~r.source.edit_mask
            out[k][keep] = r.source.pixels[keep]
    return out


def generate(vae: Any, unet: Any, scheduler: Any, requests: list[Request], *, steps: int, guidance: float,
             inpaint: bool = False) -> np.ndarray:
    """uint8 images [B, H, W, 3] for ``requests``; outside the edit mask they equal the source."""
    images = to_uint8(denoise(vae, unet, scheduler, requests, steps=steps, guidance=guidance,
                              inpaint=inpaint))
    return paste(images, requests) if inpaint else images


@torch.no_grad()
def encode_prompts(tokenizer: Any, text_encoder: Any, prompts: list[str]) -> torch.Tensor:
    """Prompt embeddings [n, L, D] as the stock pipelines compute them (no clip skip)."""
    ids = tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt")
    mask = None
    if getattr(text_encoder.config, "use_attention_mask", False):
        mask = ids.attention_mask.to(text_encoder.device)
    return text_encoder(ids.input_ids.to(text_encoder.device), attention_mask=mask)[0]
