"""images/s of `dsc augment` against DA-Fusion's generation pattern, same tiny model, same run.

DA-Fusion's pattern: one stock ``StableDiffusionImg2ImgPipeline`` call per synthetic image, the prompt and
the source image encoded again on every call. dsc: the batched, resumable job (``dsc.augment.run_augment``:
prompts encoded once per class, each source image VAE-encoded once, several images per UNet call), including
writing the store. Both use the tiny random-weight model, the same resolution, steps, strength and guidance.

Also: the peak resident memory of dsc's job at N and at 4N images (it must not grow with N), and the two
strategies of issue 14 against the same one-call-per-image pattern of their own stock pipeline: ``diff-mix``
(``StableDiffusionImg2ImgPipeline`` with the partner class's prompt) and ``text-to-image``
(``StableDiffusionPipeline``, every step from noise), N images each.

    python benchmarks/bench_augment.py [--quick] [--json FILE] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _data(path: Path, n_sources: int, res: int) -> Path:
    from dsc.store import StoreWriter

    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (n_sources, 8, 8, 3)).astype(np.uint8)
    images = small.repeat(res // 8, axis=1).repeat(res // 8, axis=2)
    with StoreWriter(path, kind="data", force=True) as w:
        w.set_classes(["gear", "bolt"])
        w.create_column("images", (res, res, 3), np.uint8, chunk_rows=1)
        w.create_column("labels", (), np.int64)
        w.create_column("split", (), str)
        w.append(images=images, labels=np.arange(n_sources) % 2, split=["train"] * n_sources)
        w.finalize()
    return path


def _peak_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 1024 / 1024


def bench_dsc(data: Path, out: Path, args: argparse.Namespace, strategy: str = "real-guidance",
              per_class: int | None = None) -> tuple[float, int]:
    from dsc.augment import run_augment
    from dsc.settings import AugmentSettings

    s = AugmentSettings(model="tiny", strategy=strategy, resolution=args.resolution, steps=args.steps,
                        strength=None if strategy == "text-to-image" else [args.strength], guidance=7.5,
                        per_image=args.per_image, per_class=per_class, batch_size=args.batch_size,
                        device=args.device)
    t0 = time.perf_counter()
    result = run_augment(data, out, s, force=True, show_progress=False)
    from dsc.store import Store

    load = Store(out).attrs["timings"].get("load_model", 0.0)
    seconds = time.perf_counter() - t0 - load  # model loading is excluded on both sides
    return seconds, result.n_images


def bench_dafusion_pattern(data: Path, args: argparse.Namespace, n_images: int) -> float:
    import torch
    from PIL import Image

    from dsc.diffusion.models import load_components
    from dsc.store import Store

    c = load_components("tiny", device=args.device)
    pipe = c.pipeline("StableDiffusionImg2ImgPipeline")
    store = Store(data)
    images = store.images(slice(None))
    names = store.classes
    labels = store.labels
    t0 = time.perf_counter()
    k = 0
    for i in range(len(images)):
        for _v in range(args.per_image):
            if k == n_images:
                break
            pipe(prompt=f"a photo of a {names[labels[i]]}", image=Image.fromarray(images[i]),
                 strength=args.strength, guidance_scale=7.5, num_inference_steps=args.steps,
                 generator=torch.Generator().manual_seed(k)).images[0].save(Path(tempfile.gettempdir()) /
                                                                             "dsc-bench-dafusion.png")
            k += 1
    return time.perf_counter() - t0


def bench_stock_pattern(data: Path, args: argparse.Namespace, aug: Path) -> float:
    """One stock pipeline call per image of the store ``aug`` (same prompt, strength, seed): img2img from its
    source image, or text-to-image for source-free rows."""
    import torch
    from PIL import Image

    from dsc.diffusion.models import load_components
    from dsc.store import Store

    c = load_components("tiny", device=args.device)
    made, real = Store(aug), Store(data)
    free = bool((made.column("source_index") < 0).all())
    pipe = c.pipeline("StableDiffusionPipeline" if free else "StableDiffusionImg2ImgPipeline")
    rows = [(str(p), int(i), float(st), int(seed)) for p, i, st, seed in zip(
        made.column("prompt"), made.column("source_index"), made.column("strength"), made.column("seed"),
        strict=True)]
    t0 = time.perf_counter()
    for prompt, index, strength, seed in rows:
        kw = dict(height=args.resolution, width=args.resolution) if free else dict(
            image=Image.fromarray(real.images([index])[0]), strength=strength)
        pipe(prompt=prompt, guidance_scale=7.5, num_inference_steps=args.steps,
             generator=torch.Generator().manual_seed(seed), **kw).images[0].save(
                 Path(tempfile.gettempdir()) / "dsc-bench-stock.png")
    return time.perf_counter() - t0


def bench_strategies(data: Path, tmp: Path, args: argparse.Namespace, n_sources: int) -> dict[str, dict]:
    """diff-mix and text-to-image (N = sources x per-image images each) against their stock pipelines; each side
    timed ``--repeat`` times, the best kept (on a shared machine the minimum is the least disturbed run)."""
    out: dict[str, dict] = {}
    for strategy in ("diff-mix", "text-to-image"):
        per_class = n_sources * args.per_image // 2 if strategy == "text-to-image" else None  # 2 classes: N images
        aug = tmp / f"{strategy}.h5"
        dsc_s, n = min(bench_dsc(data, aug, args, strategy, per_class) for _ in range(args.repeat))
        base_s = min(bench_stock_pattern(data, args, aug) for _ in range(args.repeat))
        out[strategy] = {"images": n, "repeat": args.repeat, "dsc_images_per_second": n / dsc_s,
                         "stock_pattern_images_per_second": n / base_s, "speedup": base_s / dsc_s}
        print(f"{strategy:<14} dsc {n / dsc_s:.2f} images/s, stock 1/call {n / base_s:.2f} images/s: "
              f"{base_s / dsc_s:.2f}x  (target >= 3x)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    ap.add_argument("--json", type=Path, help="write the results to this JSON file")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (same for both)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--strength", type=float, default=0.5)
    ap.add_argument("--per-image", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--sources", type=int, default=None, help="real images (N = sources x per-image)")
    ap.add_argument("--repeat", type=int, default=2, help="diff-mix / text-to-image: best of this many timings")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(args.threads)
    n_sources = args.sources or (4 if args.quick else 12)
    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.environ.setdefault("DSC_CACHE_DIR", str(Path(tmp) / "cache"))
        from dsc.diffusion.tiny import tiny_model_path

        tiny_model_path()  # built once, outside the timings
        data = _data(Path(tmp) / "data.h5", n_sources, args.resolution)
        bench_dsc(data, Path(tmp) / "warm.h5", argparse.Namespace(**{**vars(args), "per_image": 1}))  # warm-up
        dsc_s, n = bench_dsc(data, Path(tmp) / "aug.h5", args)
        peak_n = _peak_mb()
        base_s = bench_dafusion_pattern(data, args, n)
        data4 = _data(Path(tmp) / "data4.h5", 4 * n_sources, args.resolution)
        dsc4_s, n4 = bench_dsc(data4, Path(tmp) / "aug4.h5", args)
        peak_4n = _peak_mb()
        strategies = bench_strategies(data, Path(tmp), args, n_sources)
    res = {
        "device": args.device, "threads": args.threads, "resolution": args.resolution, "steps": args.steps,
        "strength": args.strength, "per_image": args.per_image, "batch_size": args.batch_size, "images": n,
        "dsc_images_per_second": n / dsc_s, "dafusion_pattern_images_per_second": n / base_s,
        "speedup": base_s / dsc_s, "dsc_images_per_second_4n": n4 / dsc4_s,
        "peak_rss_mb_after_n": round(peak_n, 1), "peak_rss_mb_after_4n": round(peak_4n, 1),
        "peak_growth_mb": round(peak_4n - peak_n, 1), "strategies": strategies,
    }
    print(f"dsc augment (batched)      : {res['dsc_images_per_second']:.2f} images/s ({n} images)")
    print(f"DA-Fusion pattern (1/call) : {res['dafusion_pattern_images_per_second']:.2f} images/s ({n} images)")
    print(f"speed-up                   : {res['speedup']:.2f}x  (target >= 3x)")
    print(f"dsc at 4N = {n4} images    : {res['dsc_images_per_second_4n']:.2f} images/s")
    print(f"peak RSS after N / 4N      : {peak_n:.0f} MB / {peak_4n:.0f} MB (growth {peak_4n - peak_n:.1f} MB)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
