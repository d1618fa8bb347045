"""`dsc probe` (linear probe on cached features) against linear training through the frozen encoder.

    python benchmarks/bench_probe.py [--quick] [--json FILE] [--data DIR] [--backbone NAME]

Both train the same linear layer on the same frozen encoder with the same epochs, batch size, learning rate
and seed, and select the epoch by val top-1:
- baseline: the usual linear-evaluation loop (SupContrast's main_linear.py style): every epoch, every train
  batch goes through the frozen encoder (eval mode, no grad) before the linear step, and val goes through
  the encoder again for selection; images come from memory (already decoded, resized uint8 tensors), so
  only the encoder passes differ;
- dsc: `dsc.probe.probe` — one encoder pass per image into RUN/embeddings.h5, then the epochs run on the
  cached features (robustness off; OOD/test evaluation included in its time).
Data: 20 classes of ../shared/data/carparts50 at 64 px (subset built once in a temp folder) when present,
else a synthetic 20-class store (coloured patterns). The encoder has random weights (speed does not depend
on them). --quick: 10 images per class, 6 epochs (default: 40 and 30). Prints both times and the ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "carparts50"
CLASSES, SIZE, SEED = 20, 64, 0


def make_data(folder: Path, data_dir: Path, per_class: int) -> tuple[Path, str]:
    """DATA.h5 from carparts50 when present, else a synthetic store."""
    out = folder / "data.h5"
    if data_dir.is_dir():
        from dsc.settings import SubsetSettings
        from dsc.subset import build_subset

        settings = SubsetSettings(dataset="folder", root=data_dir, classes=CLASSES, resolution=SIZE, seed=SEED,
                                  max_per_class=per_class, split=(0.6, 0.2, 0.2))
        build_subset(settings, out, force=True, show_progress=False)
        return out, f"carparts50 ({CLASSES} classes)"
    import numpy as np

    from dsc.store import StoreWriter

    rng = np.random.default_rng(SEED)
    labels = np.repeat(np.arange(CLASSES), per_class)
    split = np.array(["train", "train", "train", "val", "test"] * (len(labels) // 5 + 1))[: len(labels)]
    colours = rng.integers(30, 225, (CLASSES, 3))
    imgs = np.clip(colours[labels][:, None, None, :] + rng.normal(0, 30, (len(labels), SIZE, SIZE, 3)), 0, 255)
    w = StoreWriter(out, kind="data", force=True)
    w.set_classes([f"class{c}" for c in range(CLASSES)])
    w.create_column("images", (SIZE, SIZE, 3), np.uint8, chunk_rows=1)
    w.create_column("labels", (), np.int64)
    w.create_column("split", (), str)
    w.append(images=imgs.astype(np.uint8), labels=labels, split=split.tolist())
    w.finalize()
    return out, f"synthetic ({CLASSES} classes)"


def make_run(folder: Path, data_path: Path, backbone: str) -> Path:
    """A pretrain run directory with a randomly initialised encoder (docs/run-format.md)."""
    import torch

    from dsc.backbones import create_backbone
    from dsc.store import open_store
    from dsc.train.checkpoint import save_checkpoint

    data = open_store(data_path)
    torch.manual_seed(SEED)
    bb = create_backbone(backbone)
    run = folder / "run"
    run.mkdir()
    save_checkpoint(run, "best", {"encoder": bb.module}, {"epoch": 1})
    info = {"schema": "dsc-run/1", "command_name": "pretrain", "status": "complete", "seed": SEED,
            "settings": {"backbone": backbone, "image_size": SIZE, "seed": SEED},
            "inputs": {"data": {"path": str(data.path), "fingerprint": data.fingerprint}, "synthetic": [],
                       "negatives": []},
            "backbone": {"name": backbone, "model_id": bb.model_id, "feature_dim": bb.feature_dim,
                         "data_config": {k: list(v) if isinstance(v, tuple) else v for k, v in bb.data_config.items()}},
            "timings": {}}
    (run / "run.json").write_text(json.dumps(info))
    return run


def through_encoder(run: Path, settings) -> tuple[float, float, int]:
    """The baseline loop; returns (seconds, test top-1, selected epoch)."""
    import torch
    from torch import nn

    from dsc.evaluate.features import Preprocess, normalisation
    from dsc.evaluate.linear import init_linear
    from dsc.evaluate.suite import in_distribution_indices
    from dsc.store import open_store
    from dsc.train.checkpoint import load_encoder
    from dsc.train.run_dir import read_run_info

    start = time.perf_counter()
    backbone, _ = load_encoder(run, "best")
    data = open_store(read_run_info(run)["inputs"]["data"]["path"])
    mean, std = normalisation(backbone.data_config)
    prep = Preprocess(SIZE, mean, std, torch.device("cpu"))
    sets = {}
    for split in ("train", "val", "test"):
        rows = in_distribution_indices(data, split)
        sets[split] = (prep.uint8(data.images(rows)), torch.from_numpy(data.labels[rows]))
    enc = backbone.module.eval()
    gen = torch.Generator().manual_seed(settings.seed)
    head = init_linear(backbone.feature_dim, len(data.classes), gen)
    opt = torch.optim.SGD(head.parameters(), lr=settings.lr, momentum=0.9, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.epochs)
    loss_fn = nn.CrossEntropyLoss()

    def encode(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return enc(prep.normalise(x))

    def top1(split: str, model: nn.Module) -> float:
        x, y = sets[split]
        preds = torch.cat([model(encode(x[s:s + settings.batch_size])).argmax(1)
                           for s in range(0, len(y), settings.batch_size)])
        return float((preds == y).float().mean())

    x, y = sets["train"]
    best, best_epoch, best_state = -1.0, 0, None
    for epoch in range(1, settings.epochs + 1):
        order = torch.randperm(len(y), generator=gen)
        for s in range(0, len(y), settings.batch_size):
            idx = order[s:s + settings.batch_size]
            loss = loss_fn(head(encode(x[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        with torch.no_grad():
            val = top1("val", head)
        if val > best:
            best, best_epoch = val, epoch
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
    head.load_state_dict(best_state)
    with torch.no_grad():
        test = top1("test", head)
    return time.perf_counter() - start, test, best_epoch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 images per class, 6 epochs")
    parser.add_argument("--json", type=Path, default=None, help="write the results to this file")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="carparts50 folder (optional)")
    parser.add_argument("--backbone", default="timm:resnet18")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    import torch

    from dsc.probe import probe
    from dsc.settings import ProbeSettings

    per_class = 10 if args.quick else 40
    epochs = args.epochs or (6 if args.quick else 30)
    settings = ProbeSettings(epochs=epochs, batch_size=64, corruptions=False, seed=SEED, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data_path, source = make_data(folder, args.data, per_class)
        run = make_run(folder, data_path, args.backbone)
        t0 = time.perf_counter()
        res = probe(run, settings)
        t_dsc = time.perf_counter() - t0
        t_base, base_test, base_epoch = through_encoder(run, settings)
        n_test = res.metrics["test"]["n"]
    rows = {
        "dsc": {"seconds": round(t_dsc, 3), "test_top1": res.metrics["test"]["top1"],
                "selected_epoch": res.metrics["selected_epoch"], "features_s": res.metrics["timings"]["features"],
                "probe_s": res.metrics["timings"]["probe"]},
        "baseline": {"seconds": round(t_base, 3), "test_top1": base_test, "selected_epoch": base_epoch},
    }
    ratio = t_base / t_dsc
    print(f"data: {source}, {SIZE} px, backbone {args.backbone}, {epochs} epochs, torch threads "
          f"{torch.get_num_threads()}")
    print(f"baseline (encoder every epoch): {t_base:8.2f} s  test top-1 {base_test:.4f} (epoch {base_epoch})")
    print(f"dsc probe (cached features):    {t_dsc:8.2f} s  test top-1 {res.metrics['test']['top1']:.4f} "
          f"(epoch {res.metrics['selected_epoch']}; features {rows['dsc']['features_s']:.2f} s, "
          f"probe {rows['dsc']['probe_s']:.2f} s)")
    print(f"speed-up: {ratio:.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "probe", "data": source, "backbone": args.backbone,
                                         "epochs": epochs, "quick": args.quick, "test_n": n_test,
                                         "results": rows, "ratio": round(ratio, 3)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
