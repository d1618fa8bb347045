"""Textual-inversion and LoRA (`dsc invert --method lora`) steps/s: dsc's step (source images VAE-encoded once, latents sampled from the cached
posterior) against the naive loop of DA-Fusion's / diffusers' scripts (every step re-encodes its batch through
the VAE), measured in the same run with the same model, images, batch, steps and seeds.

    python benchmarks/bench_invert.py [--quick] [--json FILE] [--model tiny] [--resolution 256]
                                      [--batch-size 4] [--steps 30] [--device auto] [--threads N]
                                      [--methods textual-inversion,lora]

Both loops share everything else (dsc's ``TokenTrainer``: hook-spliced float32 vectors, same optimizer, same
noise/timestep draws; for ``lora`` dsc's ``JointTrainer`` over the same LoRA start). dsc's time includes its one-off encoding of all images (and their mirror images), so the
ratio is an honest end-to-end one for the given number of steps; per-step figures are printed too. With the
tiny random model the UNet is tiny relative to the VAE encoder, so the ratio depends on the resolution: at
512 px with real SD 1.x weights the encoder is a large share of a training step as well. On a shared CPU use
``--threads 1`` (several spinning OpenMP threads on a busy 2-core machine are many times slower); ``--quick``
does so unless ``--threads`` is given.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dsc.console import out
from dsc.diffusion import inversion as I
from dsc.diffusion import tokens as T
from dsc.diffusion.models import load_components


def _images(n: int, res: int, seed: int = 0) -> np.ndarray:
    """Smooth random images (something like photos for a VAE), uint8 [n, res, res, 3]."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (n, 3, res // 16, res // 16)).astype(np.float32)
    big = torch.nn.functional.interpolate(torch.from_numpy(small), size=(res, res), mode="bilinear")
    return big.permute(0, 2, 3, 1).clamp(0, 255).byte().numpy()


def random_full_size(device: str, dtype: str):
    """Stable Diffusion 1.x at full size (UNet 860M, VAE, CLIP-L-sized text encoder) with random weights,
    built in memory: real shapes and costs without downloading weights. Tokenizer/scheduler from ``tiny``."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from dsc.diffusion.device import pick_device, pick_dtype
    from dsc.diffusion.models import SDComponents

    tiny = load_components("tiny", device="cpu")
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    tok = tiny.tokenizer
    with torch.random.fork_rng(devices=[]), torch.device(dev):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
                            sample_size=512)
        text = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tok), hidden_size=768, intermediate_size=3072, num_attention_heads=12,
            num_hidden_layers=12, max_position_embeddings=77, hidden_act="quick_gelu",
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    for m in (unet, vae, text):
        m.to(dev, dt).requires_grad_(False).eval()
    if dev.type == "cuda":
        unet.to(memory_format=torch.channels_last)
    return SDComponents(vae=vae, unet=unet, text_encoder=text, tokenizer=tok, scheduler=tiny.scheduler,
                        model_id="sd-random (full-size SD 1.x, random weights)", revision=None, device=dev,
                        dtype=dt, is_tiny=True, source="memory", base_vocab_size=len(tok))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _trainer(components, naive: bool, lora_start: dict | None):
    """textual inversion: a new token and its ``TokenTrainer``; ``lora`` (``lora_start`` given): the injected
    LoRA reset to its start and a ``JointTrainer`` over it. Returns (trainer, prompt ids)."""
    if lora_start is not None:
        from dsc.diffusion.lora import JointTrainer
        from dsc.settings import InvertSettings

        params = dict(sorted((n, p) for n, p in components.unet.named_parameters() if ".lora_" in n))
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(lora_start[n])
        trainer = JointTrainer(components, InvertSettings(method="lora"), params, None)
        return trainer, I.prompt_ids(components, "object", ("a photo of a {}",))
    token = "<bench_naive>" if naive else "<bench_dsc>"
    init = I.initial_vectors(components, "object", 1)
    ids = T.add_token_vectors(components, token, init)
    return I.TokenTrainer(components, ids, init, lr=5e-3), I.prompt_ids(components, token, ("a photo of a {}",))


def run_loop(components, pixels: torch.Tensor, steps: int, batch: int, *, naive: bool, seed: int = 0,
             lora_start: dict | None = None) -> dict:
    """Train one token (or, with ``lora_start``, the LoRA) for ``steps`` steps; return timings. ``naive``
    re-encodes each batch every step."""
    trainer, prompts = _trainer(components, naive, lora_start)
    gen = torch.Generator().manual_seed(seed)
    scaling = float(components.vae.config.scaling_factor)
    num_train_timesteps = int(trainer.noise_scheduler.config.num_train_timesteps)
    _sync(components.device)
    start = time.perf_counter()
    encode = 0.0
    if not naive:
        mean, std = I.encode_latents(components, pixels, batch)
        _sync(components.device)
        encode = time.perf_counter() - start
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, pixels.shape[0], (batch,), generator=gen)
        eps = torch.randn((batch, 4, pixels.shape[-2] // 8, pixels.shape[-1] // 8), generator=gen)
        noise = torch.randn(eps.shape, generator=gen)
        timesteps = torch.randint(0, num_train_timesteps, (batch,), generator=gen)
        if naive:
            with torch.no_grad():
                x = pixels[idx].to(components.device, components.dtype)
                dist = components.vae.encode(x).latent_dist
                latents = (dist.mean.float() + dist.std.float() * eps.to(components.device)) * scaling
        else:
            i = idx.to(mean.device)
            latents = (mean[i] + std[i] * eps.to(mean.device)) * scaling
        loss = trainer.loss(latents, prompts.repeat(batch, 1), noise, timesteps)
        trainer.backward(loss, 1)
        trainer.update()
        losses.append(float(loss.detach()))
    _sync(components.device)
    total = time.perf_counter() - start
    if hasattr(trainer, "close"):
        trainer.close()
    return {"seconds": round(total, 4), "encode_seconds": round(encode, 4),
            "steps_per_s": round(steps / total, 3),
            "steps_per_s_excluding_encode": round(steps / max(total - encode, 1e-9), 3),
            "final_loss": round(float(np.mean(losses[-5:])), 5)}


def measure(components, pixels: torch.Tensor, steps: int, batch: int, repeats: int,
            lora_start: dict | None = None) -> dict:
    """Naive and dsc loops alternated ``repeats`` times (the best of each kept), and their ratios."""
    best: dict[str, dict] = {}
    for _ in range(repeats):
        for name, naive in (("naive", True), ("dsc", False)):
            r = run_loop(components, pixels, steps, batch, naive=naive, lora_start=lora_start)
            if name not in best or r["steps_per_s"] > best[name]["steps_per_s"]:
                best[name] = r
    ratio = best["dsc"]["steps_per_s"] / best["naive"]["steps_per_s"]
    per_step = best["dsc"]["steps_per_s_excluding_encode"] / best["naive"]["steps_per_s"]
    return {"dsc": best["dsc"], "naive_reencode": best["naive"], "ratio": round(ratio, 3),
            "ratio_per_step": round(per_step, 3)}


def report(label: str, m: dict, steps: int) -> None:
    out.print(f"  {label}:")
    out.print(f"    naive (VAE every step)  {m['naive_reencode']['steps_per_s']:8.2f} steps/s")
    out.print(f"    dsc (latents cached)    {m['dsc']['steps_per_s']:8.2f} steps/s  "
              f"(encode once {m['dsc']['encode_seconds']:.2f} s; "
              f"{m['dsc']['steps_per_s_excluding_encode']:.2f} steps/s after it)")
    out.print(f"    ratio dsc / naive       {m['ratio']:8.2f}x for {steps} steps including the one-off encoding; "
              f"{m['ratio_per_step']:.2f}x per step (what a 1000-2000-step run approaches)")


def inject_lora(components) -> dict:
    """``dsc invert --method lora``'s default LoRA (rank 4 on to_q, to_k, to_v, to_out.0) in the UNet; its
    start tensors (every measured run begins from them)."""
    from dsc.diffusion.lora import inject
    from dsc.settings import InvertSettings

    params = inject(components, InvertSettings(method="lora"))
    return {n: p.detach().clone() for n, p in params.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small run (under a minute on a CPU)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--model", default="tiny", help="tiny, sd-random (full-size, random weights; for GPUs) or any "
                    "model dsc can load")
    ap.add_argument("--resolution", type=int, default=None)
    ap.add_argument("--images", type=int, default=8, help="source images of the class (x2 with mirrors)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    ap.add_argument("--repeats", type=int, default=None, help="alternating rounds; the best of each is kept")
    ap.add_argument("--methods", default="textual-inversion,lora", help="textual-inversion and/or lora")
    args = ap.parse_args()
    if args.threads or args.quick:  # --quick: one thread unless told, predictable on a busy shared CPU
        torch.set_num_threads(args.threads or 1)
    res = args.resolution or (128 if args.quick else 256)
    steps = args.steps or (30 if args.quick else 60)
    repeats = args.repeats or 2
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    if args.model == "sd-random":
        components = random_full_size(args.device, args.dtype)
    else:
        components = load_components(args.model, device=args.device, dtype=args.dtype)
    pixels = I.prepare_pixels(_images(args.images, res), res)
    pixels = torch.cat([pixels, pixels.flip(-1)])  # dsc's default --flip: twice the images to encode once
    run_loop(components, pixels[:4], 2, min(2, args.batch_size), naive=False)  # warm-up (kernels, allocator)
    result: dict = {"benchmark": "invert", "model": components.model_id, "device": str(components.device),
                    "dtype": str(components.dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
                    "resolution": res, "images_encoded_once": int(pixels.shape[0]), "batch_size": args.batch_size,
                    "steps": steps}
    out.print(f"invert, {components.model_id} on {result['device']} ({result['dtype']}), {res} px, batch "
              f"{args.batch_size}, {steps} steps, {pixels.shape[0]} images (with mirrors):")
    if "textual-inversion" in methods:
        result.update(measure(components, pixels, steps, args.batch_size, repeats))  # top level, as before
        report("textual inversion (one token)", result, steps)
    if "lora" in methods:  # after textual inversion: the LoRA stays in the UNet once injected
        result["lora"] = measure(components, pixels, steps, args.batch_size, repeats, inject_lora(components))
        report("--method lora (rank 4 on the UNet's attention)", result["lora"], steps)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
