"""`dsc pretrain` images/s against a SupContrast-style loop, measured in the same run.

    python benchmarks/bench_pretrain.py [--quick] [--json FILE] [--models mobilenetv3_small_050,resnet18]

Data: 20 classes of ../shared/data/carparts50 made into a 64 px DATA.h5 with `dsc subset` (skipped cleanly
when the folder is missing). Both loops train the same backbone + SupContrast head with the same SupCon loss,
optimizer, batch size, epochs and train images; they differ only in input handling:

- dsc: images read from HDF5 into memory once (timed separately as "load"), two views per image made on
  whole batches (uint8 tensors, per-sample random parameters), no decoding per epoch; the next batch is
  built inline between steps (dsc's default, `--workers 0`; `--dsc-workers 1` prepares it in a background
  thread, which on a 2-core CPU competes with the compute threads and measured slower);
- SupContrast-style: PIL decode of the image files every epoch, per-sample torchvision transforms
  (RandomResizedCrop(64, scale 0.2-1), flip, ColorJitter p 0.8, grayscale p 0.2, ToTensor, Normalize) via
  TwoCropTransform, DataLoader(num_workers=2, shuffle=True).

Reported per loop: images/s of training (wall time of the epochs, validation excluded) and the share of
that time spent waiting for data (dsc: building the batch and its views; reference: waiting on the
DataLoader iterator).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from dsc.console import out

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "carparts50"


def make_store(folder: Path, size: int, per_class: int | None) -> Path:
    path = folder / f"carparts20_{size}.h5"
    cmd = [sys.executable, "-m", "dsc", "-q", "subset", "--dataset", "folder", "--root", str(ROOT), "--classes", "20",
           "--resolution", str(size), "--seed", "0", "-o", str(path)]
    if per_class:
        cmd += ["--max-per-class", str(per_class)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return path


def run_dsc(data: Path, model: str, args: argparse.Namespace, out_dir: Path) -> dict:
    from dsc.settings import PretrainSettings
    from dsc.train.pretrain import pretrain

    settings = PretrainSettings(backbone=f"timm:{model}", image_size=args.size, batch_size=args.batch_size,
                                epochs=args.epochs, lr=0.05, seed=0, workers=args.dsc_workers,
                                channels_last=not args.no_channels_last)
    result = pretrain(data, out_dir / f"dsc_{model}", settings, force=True)
    rows = result.metrics
    ips = sum(r["images_per_s"] for r in rows) / len(rows)
    wait = sum(r["data_wait_share"] for r in rows) / len(rows)
    return {"images_per_s": round(ips, 2), "data_wait_share": round(wait, 4),
            "load_s": result.timings.get("load", 0.0), "loss": rows[-1]["loss"]}


class TwoCrop:
    def __init__(self, transform) -> None:
        self.transform = transform

    def __call__(self, x):
        return [self.transform(x), self.transform(x)]


class FileDataset(torch.utils.data.Dataset):
    def __init__(self, paths: list[str], labels: list[int], transform) -> None:
        self.paths, self.labels, self.transform = paths, labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            img = im.convert("RGB")
        return self.transform(img), self.labels[i]


def run_reference(data: Path, model: str, args: argparse.Namespace) -> dict:
    """SupContrast's main_supcon.py data path with the same model, loss and optimizer."""
    from torchvision import transforms as T

    from dsc.backbones import create_backbone
    from dsc.losses import SupConLoss
    from dsc.store import open_store
    from dsc.train.pretrain import ProjectionHead, SupConNet

    store = open_store(data)
    rows = store.indices("train")
    paths = [str(ROOT / p) for p in store.column("source")[rows]]
    labels = [int(x) for x in store.labels[rows]]
    bb = create_backbone(f"timm:{model}")
    mean, std = bb.data_config["mean"], bb.data_config["std"]
    tf = T.Compose([T.RandomResizedCrop(args.size, scale=(0.2, 1.0)), T.RandomHorizontalFlip(),
                    T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
                    T.ToTensor(), T.Normalize(mean, std)])
    loader = torch.utils.data.DataLoader(FileDataset(paths, labels, TwoCrop(tf)), batch_size=args.batch_size,
                                         shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(0))
    net = SupConNet(bb.module, ProjectionHead(bb.feature_dim))
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    crit = SupConLoss(0.1)
    net.train()
    total, wait, n = 0.0, 0.0, 0
    for _ in range(args.epochs):
        start = time.perf_counter()
        it = iter(loader)
        while True:
            t0 = time.perf_counter()
            try:
                (v1, v2), y = next(it)
            except StopIteration:
                break
            wait += time.perf_counter() - t0
            z = net(torch.cat([v1, v2]))
            loss = crit(torch.stack([z[:len(y)], z[len(y):]], 1), labels=y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n += len(y)
        total += time.perf_counter() - start
    return {"images_per_s": round(n / total, 2), "data_wait_share": round(wait / total, 4), "loss": float(loss)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="40 images per class, 1 epoch, mobilenet only")
    ap.add_argument("--models", default=None, help="comma-separated timm models")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--per-class", type=int, default=None, help="cap images per class (default: all; quick: 40)")
    ap.add_argument("--dsc-workers", type=int, default=0, help="dsc --workers (0: dsc's default, inline; 1: prefetch thread)")
    ap.add_argument("--no-channels-last", action="store_true", help="dsc --no-channels-last")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if not ROOT.is_dir():
        out.print(f"skipped: {ROOT} not found")
        return
    models = (args.models or ("mobilenetv3_small_050" if args.quick else "mobilenetv3_small_050,resnet18")).split(",")
    args.epochs = args.epochs or (1 if args.quick else 2)
    per_class = args.per_class or (40 if args.quick else None)
    results = {"settings": {"size": args.size, "batch_size": args.batch_size, "epochs": args.epochs,
                            "per_class": per_class, "threads": torch.get_num_threads()}, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        data = make_store(Path(tmp), args.size, per_class)
        for model in models:
            ref = run_reference(data, model, args)
            ours = run_dsc(data, model, args, Path(tmp))
            ratio = ours["images_per_s"] / ref["images_per_s"]
            results["models"][model] = {"dsc": ours, "supcontrast_style": ref, "ratio": round(ratio, 2)}
            out.print(f"{model}: dsc {ours['images_per_s']:.1f} img/s (data wait {100 * ours['data_wait_share']:.0f}%,"
                      f" one-off load {ours['load_s']:.1f}s) vs SupContrast-style {ref['images_per_s']:.1f} img/s "
                      f"(data wait {100 * ref['data_wait_share']:.0f}%): {ratio:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
