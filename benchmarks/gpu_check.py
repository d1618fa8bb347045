"""The GPU check (Python part of benchmarks/gpu_check.sh): full-size Stable Diffusion 1.5 generation and
`dsc pretrain` throughput on one GPU, with nothing downloaded (random weights built in code).

    python benchmarks/gpu_check.py [--quick] [--dry-run] [--out DIR]

Steps, each printed as it is measured and saved to DIR/gpu_check.json right away (partial results survive a
crash or a timeout):

1. ``env``: torch, CUDA, GPU name, package versions.
2. ``build``: a random-weight UNet2DConditionModel with SD 1.5's config (860M parameters), the SD VAE and a
   CLIP ViT-L/14 text encoder, constructed directly on the GPU (no slow CPU init), with dsc's offline CLIP
   tokenizer (dsc.diffusion.tiny).
3. ``generate``: img2img at 512 px, strength 0.5, PNDM, guidance 7.5: images/s of dsc's batched core
   (dsc.diffusion.generate: prompts encoded once, each source VAE-encoded once, B images per UNet call) at
   batch 1, 8 and 16 (quick: 1 and 8) against stock StableDiffusionImg2ImgPipeline called once per image,
   in fp16 and bf16 (quick: bf16 at batch 1 only); every image must be finite.
4. ``pretrain``: dsc's training engine (dsc.train.pretrain, what `dsc pretrain` runs) with timm resnet50 at
   224 px, AMP bf16 and channels_last, on a synthetic DATA.h5 (StoreWriter); full mode also fp32 without
   channels_last as the baseline.
5. ``multi_gpu``: with 2+ GPUs, ``accelerate launch --num_processes 2 -m dsc pretrain`` (else skipped).

``--dry-run`` runs every code path on the CPU with tiny models (for tests; figures meaningless).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PROMPT = "a photo of a gear"

#: Stable Diffusion 1.5's UNet (diffusers UNet2DConditionModel config of runwayml/stable-diffusion-v1-5).
SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
#: The SD 1.x VAE (AutoencoderKL, factor 8, 4 latent channels).
SD_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
    sample_size=512)
#: CLIP ViT-L/14's text tower (SD 1.x's text encoder).
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_attention_heads=12,
              num_hidden_layers=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)

#: Tiny stand-ins for --dry-run (same classes and code paths).
TINY_UNET = dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                 attention_head_dim=8, norm_num_groups=8)
TINY_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 16, 32, 32),
                layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8, sample_size=64)
TINY_CLIP = dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                 max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=32)


# --------------------------------------------------------------------------------------------- reporting
class Report:
    """Results as one JSON file, rewritten after every step (atomic rename)."""

    def __init__(self, out_dir: Path, mode: str) -> None:
        self.path = out_dir / "gpu_check.json"
        self.data: dict[str, Any] = {"schema": "dsc-gpu-check/1", "mode": mode, "started": _now(),
                                     "status": "running", "steps": {}, "checks": {}, "errors": []}
        out_dir.mkdir(parents=True, exist_ok=True)
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n")
        os.replace(tmp, self.path)

    def step(self, name: str, value: Any) -> None:
        self.data["steps"][name] = value
        self.save()

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.data["checks"][name] = {"ok": bool(ok), "detail": detail}
        say(f"check {name}: {'OK' if ok else 'FAILED'} {detail}")
        self.save()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def say(msg: str) -> None:
    """Progress lines on stdout, flushed (the log is read while the script runs)."""
    sys.stdout.write(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stdout.flush()


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------------- env
def env_info() -> dict[str, Any]:
    import importlib.metadata as md

    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
                            "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
                            "host": platform.node(), "cpus": os.cpu_count()}
    if info["gpus"]:
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1),
                    capability=f"{p.major}.{p.minor}", bf16_supported=torch.cuda.is_bf16_supported())
    for pkg in ("dsc", "diffusers", "transformers", "timm", "accelerate", "h5py", "pydantic", "typer"):
        try:
            info[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            info[pkg] = None
    return info


# ----------------------------------------------------------------------------------------------- models
def build_sd(device: Any, tiny: bool) -> dict[str, Any]:
    """Random-weight SD 1.5-sized components, constructed on ``device`` in float32."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from dsc.diffusion.tiny import MAX_LENGTH, tokenizer_files

    vocab, merges = tokenizer_files()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges],
                              model_max_length=MAX_LENGTH)
    text_cfg = dict(TINY_CLIP if tiny else CLIP_L)
    text_cfg["vocab_size"] = max(text_cfg["vocab_size"], len(tokenizer))
    cuda_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_ids), torch.device(device):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(**(TINY_UNET if tiny else SD15_UNET))
        vae = AutoencoderKL(**(TINY_VAE if tiny else SD_VAE))
        text = CLIPTextModel(CLIPTextConfig(
            **text_cfg, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id))
    for m in (unet, vae, text):
        m.requires_grad_(False).eval()
    if device.type == "cuda":  # as `dsc augment` runs it (dsc.diffusion.models); shared by both paths
        unet.to(memory_format=torch.channels_last)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
    return {"unet": unet, "vae": vae, "text_encoder": text, "tokenizer": tokenizer, "scheduler": scheduler}


def cast(parts: dict[str, Any], dtype: Any) -> None:
    for key in ("unet", "vae", "text_encoder"):
        parts[key].to(dtype=dtype)


def n_params(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def source_images(n: int, res: int, seed: int = 0) -> np.ndarray:
    """Smooth random uint8 images [n, res, res, 3] (something like photos for a VAE)."""
    import torch

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (n, 3, max(1, res // 16), max(1, res // 16))).astype(np.float32)
    big = torch.nn.functional.interpolate(torch.from_numpy(small), size=(res, res), mode="bilinear")
    return big.permute(0, 2, 3, 1).clamp(0, 255).byte().numpy()


# ------------------------------------------------------------------------------------------- generation
def dsc_batch(parts: dict[str, Any], pixels: np.ndarray, steps: int, strength: float, guidance: float,
              seed: int) -> tuple[np.ndarray, Any]:
    """dsc's batched core: prompts encoded once, each source encoded once, all images in one loop.

    Returns the uint8 images (what ``dsc.diffusion.generate.generate`` returns without a mask) and the float
    images before rounding (checked for NaN/Inf)."""
    import torch

    from dsc.diffusion.generate import Request, denoise, encode_prompts, encode_source, to_uint8

    emb = encode_prompts(parts["tokenizer"], parts["text_encoder"], [PROMPT, ""])
    requests = [Request(encode_source(parts["vae"], img), emb[0], emb[1], strength,
                        torch.Generator().manual_seed(seed + k)) for k, img in enumerate(pixels)]
    images = denoise(parts["vae"], parts["unet"], parts["scheduler"], requests, steps=steps, guidance=guidance)
    return to_uint8(images), images


def stock_one_by_one(pipe: Any, pixels: np.ndarray, steps: int, strength: float, guidance: float,
                     seed: int) -> tuple[np.ndarray, bool]:
    """DA-Fusion's pattern: one stock pipeline call per image (prompt and image encoded on every call).
    Returns the uint8 images and whether all float outputs were finite."""
    import torch
    from PIL import Image

    out, finite = [], True
    for k, img in enumerate(pixels):
        res = pipe(prompt=PROMPT, image=Image.fromarray(img), strength=strength, guidance_scale=guidance,
                   num_inference_steps=steps, generator=torch.Generator().manual_seed(seed + k), output_type="np")
        arr = np.asarray(res.images[0], dtype=np.float32)
        finite &= bool(np.isfinite(arr).all())
        out.append((np.nan_to_num(arr).clip(0, 1) * 255).round().astype(np.uint8))
    return np.stack(out), finite


def timed(fn: Any, device: Any) -> tuple[Any, float]:
    sync(device)
    t0 = time.perf_counter()
    value = fn()
    sync(device)
    return value, time.perf_counter() - t0


def generation(parts: dict[str, Any], device: Any, args: argparse.Namespace, report: Report) -> None:
    """images/s of dsc's batched core against one stock call per image, per dtype and batch size."""
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline

    res, steps, strength, guidance = args.resolution, args.steps, 0.5, 7.5
    batches = args.batches
    pixels = source_images(max(batches + [args.baseline_images]), res)
    pipe = StableDiffusionImg2ImgPipeline(
        vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"], unet=parts["unet"],
        scheduler=parts["scheduler"], safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    results: dict[str, Any] = {"resolution": res, "steps": steps, "strength": strength, "guidance": guidance,
                               "unet_calls_per_image": int(steps * strength), "scheduler": "PNDM",
                               "dtypes": {}}
    report.step("generate", results)
    for dtype_name in args.dtypes:
        dtype = getattr(torch, dtype_name)
        cast(parts, dtype)
        row: dict[str, Any] = {"batches": {}}
        results["dtypes"][dtype_name] = row
        full_pass = dtype_name == args.dtypes[0] or not args.quick  # quick: 2nd dtype at batch 1 only
        with torch.inference_mode():
            _, warm = timed(lambda: dsc_batch(parts, pixels[:1], steps, strength, guidance, 99), device)  # noqa: B023
            row["warmup_s"] = round(warm, 2)
            finite = True
            for b in (batches if full_pass else batches[:1]):
                (imgs, raw), sec = timed(lambda: dsc_batch(parts, pixels[:b], steps, strength, guidance, 0), device)  # noqa: B023
                finite &= bool(torch.isfinite(raw).all())
                ips = b / sec
                row["batches"][str(b)] = {"dsc_images_per_s": round(ips, 3), "seconds": round(sec, 3),
                                          "std_of_pixels": round(float(imgs.astype(np.float32).std()), 2)}
                say(f"{dtype_name} dsc batched generation, batch {b:2d}: {ips:7.2f} images/s ({sec:.2f} s)")
                report.save()
            n_base = args.baseline_images if full_pass else 1
            (base_imgs, base_finite), base_s = timed(lambda: stock_one_by_one(pipe, pixels[:n_base], steps, strength, guidance, 0),  # noqa: B023
                                      device)
            base_ips = n_base / base_s
            row["stock_one_per_call_images_per_s"] = round(base_ips, 3)
            row["stock_images"] = n_base
            for r in row["batches"].values():
                r["ratio_to_one_per_call"] = round(r["dsc_images_per_s"] / base_ips, 3)
            say(f"{dtype_name} stock img2img pipeline, one image per call: {base_ips:7.2f} images/s "
                f"({n_base} images, {base_s:.2f} s)")
            for b, r in row["batches"].items():
                say(f"{dtype_name} batch {b}: dsc / one-per-call = {r['ratio_to_one_per_call']:.2f}x")
            finite &= base_finite
            same = dsc_batch(parts, pixels[:1], steps, strength, guidance, 0)[0]
            diff = float(np.abs(same.astype(np.int16) - base_imgs[:1].astype(np.int16)).mean())
            row["mean_abs_diff_dsc_vs_stock_uint8"] = round(diff, 3)
        row["finite"] = bool(finite)
        if device.type == "cuda":
            row["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            torch.cuda.reset_peak_memory_stats(device)
        report.check(f"generate_{dtype_name}_finite", finite, "all decoded images finite" if finite else
                     "NaN/Inf in decoded images")
        say(f"{dtype_name}: dsc image vs stock image (same seed), mean |diff| {diff:.2f} of 255")
        report.save()


# -------------------------------------------------------------------------------------------- pretrain
def make_data(path: Path, n_train: int, n_val: int, res: int, classes: int = 10) -> Path:
    """A synthetic DATA.h5 (smooth random images, train and val rows) written with dsc's StoreWriter."""
    from dsc.store import StoreWriter

    rng = np.random.default_rng(0)
    n = n_train + n_val
    with StoreWriter(path, kind="data", force=True) as w:
        w.set_classes([f"class{i}" for i in range(classes)])
        w.create_column("images", (res, res, 3), np.uint8, chunk_rows=1)
        w.create_column("labels", (), np.int64)
        w.create_column("split", (), str)
        for start in range(0, n, 256):
            m = min(256, n - start)
            small = rng.integers(0, 255, (m, 7, 7, 3)).astype(np.uint8)
            reps = -(-res // 7)
            images = np.ascontiguousarray(small.repeat(reps, axis=1).repeat(reps, axis=2)[:, :res, :res])
            rows = np.arange(start, start + m)
            w.append(images=images, labels=rows % classes, split=["train" if r < n_train else "val" for r in rows])
        w.finalize()
    return path


def pretrain_run(data: Path, out: Path, args: argparse.Namespace, amp: str, channels_last: bool) -> dict[str, Any]:
    from dsc.settings import PretrainSettings
    from dsc.train.pretrain import pretrain

    settings = PretrainSettings(backbone=args.backbone, image_size=args.image_size, batch_size=args.batch_size,
                                epochs=args.epochs, lr=0.05, seed=0, amp=amp, channels_last=channels_last,
                                knn_k=5)
    t0 = time.perf_counter()
    result = pretrain(data, out, settings, force=True)
    wall = time.perf_counter() - t0
    rows = result.metrics
    last = rows[-1]
    return {"amp": amp, "channels_last": channels_last, "epochs": len(rows),
            "images_per_s_last_epoch": round(float(last["images_per_s"]), 1),
            "images_per_s_per_epoch": [round(float(r["images_per_s"]), 1) for r in rows],
            "data_wait_share_last_epoch": round(float(last.get("data_wait_share", 0.0)), 4),
            "loss_last": float(last.get("loss", float("nan"))), "wall_s": round(wall, 2),
            "timings": {k: round(float(v), 3) for k, v in (result.timings or {}).items()}}


def pretraining(device: Any, args: argparse.Namespace, report: Report, tmp: Path) -> Path:
    import math

    import torch

    data = make_data(tmp / "DATA.h5", args.train_images, args.val_images, args.image_size)
    res: dict[str, Any] = {"backbone": args.backbone, "image_size": args.image_size, "batch_size": args.batch_size,
                           "train_images": args.train_images, "epochs": args.epochs, "runs": {}}
    report.step("pretrain", res)
    amp = "bf16" if device.type == "cuda" else "off"
    configs = [("amp_channels_last", amp, True)]
    if not args.quick:
        configs.append(("fp32_baseline", "off", False))
    for name, amp_mode, cl in configs:
        r = pretrain_run(data, tmp / f"run_{name}", args, amp_mode, cl)
        res["runs"][name] = r
        say(f"pretrain {args.backbone} {args.image_size}px amp={amp_mode} channels_last={cl}: "
            f"{r['images_per_s_last_epoch']:.1f} images/s (last epoch; data wait "
            f"{100 * r['data_wait_share_last_epoch']:.1f}%), loss {r['loss_last']:.3f}")
        report.check(f"pretrain_{name}_finite_loss", math.isfinite(r["loss_last"]), f"loss {r['loss_last']:.4f}")
    if "fp32_baseline" in res["runs"]:
        ratio = res["runs"]["amp_channels_last"]["images_per_s_last_epoch"] / \
            res["runs"]["fp32_baseline"]["images_per_s_last_epoch"]
        res["ratio_amp_cl_to_fp32"] = round(ratio, 3)
        say(f"pretrain AMP+channels_last / fp32: {ratio:.2f}x")
    if device.type == "cuda":
        res["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    report.save()
    return data


def multi_gpu(data: Path, args: argparse.Namespace, report: Report, tmp: Path) -> None:
    """``accelerate launch --num_processes 2 -m dsc pretrain`` when two GPUs are there."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus < 2 and not args.dry_run:
        report.step("multi_gpu", {"skipped": f"{gpus} GPU(s): the 2-process run needs 2"})
        say(f"multi-GPU: skipped ({gpus} GPU)")
        return
    if args.dry_run and not args.dry_run_multi:
        report.step("multi_gpu", {"skipped": "dry run (--dry-run-multi runs it with 2 CPU processes)"})
        say("multi-GPU: skipped in the dry run")
        return
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no"]
    if args.dry_run:
        cmd += ["--cpu"]
    cmd += ["-m", "dsc", "pretrain", str(data), "-o", str(tmp / "run_2proc"), "--backbone", args.backbone,
            "--image-size", str(args.image_size), "--batch-size", str(args.batch_size), "--epochs",
            str(args.epochs), "--amp", "bf16" if not args.dry_run else "off", "--knn-k", "5", "--force", "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.multi_timeout)
    wall = time.perf_counter() - t0
    row: dict[str, Any] = {"processes": 2, "returncode": proc.returncode, "wall_s": round(wall, 2)}
    metrics = tmp / "run_2proc" / "metrics.jsonl"
    if proc.returncode == 0 and metrics.is_file():
        lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
        epochs = [x for x in lines if "images_per_s" in x]
        if epochs:
            row["images_per_s_last_epoch"] = round(float(epochs[-1]["images_per_s"]), 1)
    else:
        row["stderr_tail"] = proc.stderr[-3000:]
    report.step("multi_gpu", row)
    say(f"2-process pretrain: exit {proc.returncode}, {row.get('images_per_s_last_epoch', 'n/a')} images/s, "
        f"{wall:.1f} s")
    report.check("multi_gpu_runs", proc.returncode == 0, f"exit {proc.returncode}")


# ------------------------------------------------------------------------------------------------- main
def _quiet() -> None:
    """No loading chatter from diffusers/transformers (dtype-cast notes, progress bars)."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    dlog.set_verbosity_error()
    tlog.set_verbosity_error()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="under 90 s on an H100: fewer steps, batch 1 and 8")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny models: exercise every code path")
    ap.add_argument("--dry-run-multi", action="store_true", help="dry run: also the 2-process CPU launch")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default: $OUT, else ./gpu-check-out)")
    ap.add_argument("--skip", default="", help="comma-separated steps to skip: generate,pretrain,multi_gpu")
    ap.add_argument("--multi-timeout", type=int, default=240)
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds: steps not started by then are skipped (default: quick 45, full 420)")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path("gpu-check-out")
    if args.budget is None:
        args.budget = 45.0 if args.quick else 420.0
    if args.dry_run:  # the quick configuration's code paths, tiny sizes, on the CPU
        args.quick, args.budget = True, 1e9
        args.resolution, args.steps, args.batches, args.baseline_images = 32, 2, [1, 2], 2
        args.dtypes = ["float32", "bfloat16"]
        args.backbone, args.image_size, args.batch_size = "timm:test_resnet", 32, 16
        args.train_images, args.val_images, args.epochs = 48, 16, 1
    elif args.quick:
        args.resolution, args.steps, args.batches, args.baseline_images = 512, 20, [1, 8], 3
        args.dtypes = ["float16", "bfloat16"]
        args.backbone, args.image_size, args.batch_size = "timm:resnet50", 224, 128
        args.train_images, args.val_images, args.epochs = 512, 64, 2
    else:
        args.resolution, args.steps, args.batches, args.baseline_images = 512, 20, [1, 8, 16], 8
        args.dtypes = ["float16", "bfloat16"]
        args.backbone, args.image_size, args.batch_size = "timm:resnet50", 224, 128
        args.train_images, args.val_images, args.epochs = 2560, 256, 3
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    mode = "dry-run" if args.dry_run else "quick" if args.quick else "full"
    report = Report(args.out, mode)
    t_start = time.perf_counter()
    try:
        import torch
    except ImportError as e:
        report.data.update(status="skipped", skipped=f"torch not importable: {e}")
        report.save()
        say(f"skipped: torch not importable ({e})")
        return 0
    if not args.dry_run and not torch.cuda.is_available():
        report.data.update(status="skipped", skipped="no CUDA device")
        report.save()
        say("skipped: no CUDA device (run on a GPU machine, or --dry-run for the CPU code paths)")
        return 0
    skip = {s for s in args.skip.split(",") if s}
    device = torch.device("cpu" if args.dry_run else "cuda")
    _quiet()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    info = env_info()
    report.step("env", info)
    say(f"mode {mode}; torch {info['torch']} CUDA {info['cuda']}; GPU {info.get('gpu', 'none')} "
        f"({info['gpus']} GPU); dsc {info['dsc']}, diffusers {info['diffusers']}, "
        f"transformers {info['transformers']}, timm {info['timm']}")
    failed = False
    with tempfile.TemporaryDirectory(prefix="dsc-gpu-check-") as tmp_s:
        tmp = Path(tmp_s)
        os.environ.setdefault("DSC_CACHE_DIR", str(tmp / "cache"))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        data = None
        for name in ("generate", "pretrain", "multi_gpu"):
            if name in skip:
                report.step(name, {"skipped": "--skip"})
                continue
            elapsed = time.perf_counter() - t_start
            if elapsed > args.budget:
                report.step(name, {"skipped": f"time budget: {elapsed:.0f} s > --budget {args.budget:.0f} s"})
                say(f"step {name} skipped: {elapsed:.0f} s used of a {args.budget:.0f} s budget")
                continue
            t0 = time.perf_counter()
            try:
                if name == "generate":
                    parts, sec = timed(lambda: build_sd(device, tiny=args.dry_run), device)
                    sizes = {k: n_params(parts[k]) for k in ("unet", "vae", "text_encoder")}
                    report.step("build", {"seconds": round(sec, 2), "params": sizes, "on": str(device)})
                    say(f"built random-weight SD ({'tiny' if args.dry_run else 'SD 1.5 size'}) on {device} in "
                        f"{sec:.1f} s: UNet {sizes['unet'] / 1e6:.0f}M, VAE {sizes['vae'] / 1e6:.0f}M, "
                        f"text {sizes['text_encoder'] / 1e6:.0f}M parameters")
                    generation(parts, device, args, report)
                    del parts
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                elif name == "pretrain":
                    data = pretraining(device, args, report, tmp)
                else:
                    if data is None:
                        data = make_data(tmp / "DATA.h5", args.train_images, args.val_images, args.image_size)
                    multi_gpu(data, args, report, tmp)
            except Exception as e:  # keep going: later steps still give figures
                failed = True
                report.data["errors"].append({"step": name, "error": f"{type(e).__name__}: {e}",
                                              "traceback": traceback.format_exc()[-4000:]})
                report.check(f"{name}_ran", False, f"{type(e).__name__}: {e}")
                traceback.print_exc()
            say(f"step {name} took {time.perf_counter() - t0:.1f} s")
    failed |= any(not c["ok"] for c in report.data["checks"].values())
    report.data.update(status="failed" if failed else "ok", finished=_now(),
                       total_s=round(time.perf_counter() - t_start, 1))
    report.save()
    say(f"done in {report.data['total_s']:.1f} s: {report.data['status']}; results in {report.path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
