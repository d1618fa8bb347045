"""Does dsc's training learn as well as a faithful reference loop? SupCon+probe and CE, same budget (issue 17).

    python benchmarks/bench_learning.py [--quick] [--json FILE] [--curves PNG] [--ce] [--seeds 0,1,2]
        [--datasets toyparts,carparts] [--backbone timm:resnet18] [--size 64] [--steps 300] [--head mlp-bn]

Data: ``dsc subset --dataset toyparts --classes 5 --seed 4 --option objects_per_class=N`` (3 views per object,
split by object) and, when ../shared/data/carparts50 exists (skipped cleanly when not), 20 of its classes
(``--dataset folder``); both at ``--size`` px, built in a temp folder. Every arm trains on the same uint8
arrays (the stores' train split) with the same backbone (``dsc.backbones.create_backbone``, same stem, same
seed), batch size, optimizer (SGD, momentum 0.9, weight decay 1e-4), learning rate and schedule (linear
warm-up then cosine, ``dsc.train.common.lr_at``), augmentation recipe, optimizer steps (all batches full)
and validation rounds; each arm keeps its best round by val (dsc's rule) unless ``--select last``.

SupCon arms (per seed):
- dsc: ``dsc.train.pretrain.pretrain`` with a ``steps`` budget (``epochs`` = validation rounds; val k-NN
  from its metrics.jsonl), then ``dsc.probe.probe`` (its test top-1 is reported as "dsc probe").
- reference: written here from SupContrast (Khosla et al. 2020) and not from dsc: the SupCon loss L_out
  (mask-based, all views as anchors), head Linear(d, d)-ReLU-Linear(d, 128), ``F.normalize``, two views per
  image made by torchvision.transforms on PIL images (supcon: RandomResizedCrop(scale 0.2-1), flip,
  ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8, grayscale p 0.2; light: RandomResizedCrop(scale 0.6-1), flip;
  ``--augmentation auto``, dsc's default, is resolved as dsc resolves it: light at <= 64 px, else supcon).
- Both encoders then go through ONE probe routine written here (frozen features before the head, a linear
  layer, SGD momentum 0.9, lr 0.1, cosine, best epoch by val): "probe top-1" is that test top-1. Also
  recorded: the loss of every step and the identical-embedding loss of the same batch (every projection
  equal: ln(2N-1) for N images), val k-NN top-1 (k=20, cosine, exp(sim/0.07) votes, train bank) per round,
  the mean and min pairwise cosine between the final projections of the train images (1 = collapsed; train
  mode, as the loss sees them).

CE arms (``--ce``): ``dsc.train.baseline.baseline`` against a plain torchvision-style loop (one view per image,
cross-entropy, same everything else); train accuracy (eval mode, no augmentation) of the selected and the
last weights, val and test top-1.

Verdict per dataset: dsc's mean probe top-1 >= the reference's mean minus the reference's standard deviation
over the seeds. The JSON holds the per-step and per-round curves. ``--quick``: toyparts only (12 objects
per class), resnet18 at 32 px, batch 32, 40 steps in 4 rounds, seed 0 (a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dsc.console import out

log = logging.getLogger("bench_learning")

CARPARTS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "carparts50"
BELOW = 0.9  # "well below" the identical-embedding loss: a 10-step mean under 90 % of it
WINDOW = 10  # steps in the running means of the loss
EARLY = 200  # the "within the first 200 optimizer steps"


# ------------------------------------------------------------------------------------------------- data
@dataclass
class Arrays:
    """The uint8 images [N, S, S, 3] and int64 labels of a store's splits."""

    path: Path
    classes: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    def counts(self) -> dict[str, int]:
        return {"classes": len(self.classes), "train": len(self.train_y), "val": len(self.val_y),
                "test": len(self.test_y)}


def make_store(folder: Path, dataset: str, size: int, objects: int, classes: int) -> Path:
    """A DATA.h5 made with ``python -m dsc subset`` (toyparts, or 20 classes of carparts50)."""
    if dataset == "toyparts":
        path = folder / f"toyparts5_{objects}obj_{size}.h5"
        extra = ["--dataset", "toyparts", "--classes", "5", "--seed", "4", "--option", f"objects_per_class={objects}"]
    else:
        path = folder / f"carparts{classes}_{size}.h5"
        extra = ["--dataset", "folder", "--root", str(CARPARTS), "--classes", str(classes), "--seed", "0"]
    cmd = [sys.executable, "-m", "dsc", "-q", "subset", *extra, "--resolution", str(size), "-o", str(path)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return path


def load_arrays(path: Path, size: int) -> Arrays:
    from dsc.data.stores import load_real
    from dsc.store import open_store

    store = open_store(path, kind="data")
    sets = {split: load_real(store, split, size) for split in ("train", "val", "test")}
    return Arrays(path, list(store.classes), sets["train"].images, sets["train"].labels, sets["val"].images,
                  sets["val"].labels, sets["test"].images, sets["test"].labels)


# --------------------------------------------------------------------------------- shared measurement code
def device() -> torch.device:
    """The device dsc's training picks by itself (dsc.parallel.setup_training("auto"))."""
    return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")


def plain_inputs(images: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 [B, S, S, 3] -> normalised float [B, 3, S, S] (no augmentation)."""
    x = images.permute(0, 3, 1, 2).float().div(255.0)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@torch.no_grad()
def apply(module: nn.Module, images: torch.Tensor, mean: list[float], std: list[float], dev: torch.device,
          batch: int = 256) -> torch.Tensor:
    """``module`` in eval mode over plain images; float32 outputs on the CPU (train mode restored)."""
    was = module.training
    module.eval()
    outs = [module(plain_inputs(images[i:i + batch], mean, std).to(dev)).float().cpu()
            for i in range(0, len(images), batch)]
    module.train(was)
    return torch.cat(outs) if outs else torch.zeros(0, 0)


def knn_top1(bank: torch.Tensor, bank_y: torch.Tensor, query: torch.Tensor, query_y: torch.Tensor,
             k: int = 20, t: float = 0.07) -> float:
    """Weighted k-NN top-1: the k most cosine-similar train features vote with weight exp(sim / t)."""
    if len(query) == 0:
        return float("nan")
    sim, idx = (F.normalize(query, dim=1) @ F.normalize(bank, dim=1).T).topk(min(k, len(bank)), dim=1)
    votes = torch.zeros(len(query), int(max(bank_y.max(), query_y.max())) + 1)
    votes.scatter_add_(1, bank_y[idx], torch.exp(sim / t))
    return float((votes.argmax(1) == query_y).float().mean())


def linear_probe(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                 test: tuple[torch.Tensor, torch.Tensor], n_classes: int, seed: int, epochs: int = 100,
                 lr: float = 0.1, batch: int = 256) -> dict[str, float]:
    """One linear layer on frozen features (SGD momentum 0.9, cosine over ``epochs``), the epoch with the best
    val top-1 kept (earliest on ties); its val and test top-1. The same routine for every encoder."""
    gen = torch.Generator().manual_seed(seed)
    (x, y), (vx, vy), (tx, ty) = train, val, test
    head = nn.Linear(x.shape[1], n_classes)
    with torch.no_grad():
        bound = 1 / math.sqrt(x.shape[1])
        head.weight.copy_(torch.empty_like(head.weight).uniform_(-bound, bound, generator=gen))
        head.bias.zero_()
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)

    def top1(a: torch.Tensor, b: torch.Tensor) -> float:
        with torch.no_grad():
            return float((head(a).argmax(1) == b).float().mean()) if len(b) else float("nan")

    best, best_val, best_epoch = copy.deepcopy(head.state_dict()), -1.0, 0
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch):
            idx = order[i:i + batch]
            loss = F.cross_entropy(head(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        v = top1(vx, vy)
        if v > best_val or (len(vy) == 0 and epoch == epochs):
            best, best_val, best_epoch = copy.deepcopy(head.state_dict()), v, epoch
    head.load_state_dict(best)
    return {"probe_top1": round(top1(tx, ty), 6), "probe_val_top1": round(best_val, 6), "probe_epoch": best_epoch}


@torch.no_grad()
def projection_cosines(net: nn.Module, images: torch.Tensor, mean: list[float], std: list[float],
                       dev: torch.device, batch: int) -> dict[str, float]:
    """Mean and min cosine between the projections of different train images (1, 1: all identical), as the
    loss sees them: a copy of ``net`` in train mode (BatchNorm on batch statistics), plain images in batches
    of ``batch`` (the views of one training step)."""
    probe = copy.deepcopy(net).train()
    z = torch.cat([probe(plain_inputs(images[i:i + batch], mean, std).to(dev)).float().cpu()
                   for i in range(0, len(images), batch) if len(images[i:i + batch]) > 1])
    z = F.normalize(z, dim=1)
    off = (z @ z.T)[~torch.eye(len(z), dtype=torch.bool)]
    return {"proj_cos_mean": round(float(off.mean()), 4), "proj_cos_min": round(float(off.min()), 4)}


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """SupCon L_out (Khosla et al. 2020, eq. 2) of L2-normalised features ``z`` [N, V, D] with labels [N].

    Every one of the N*V views is an anchor i; A(i) are all other views, P(i) the views in A(i) with i's
    label; loss_i = -1/|P(i)| sum_{p in P(i)} log(exp(z_i.z_p/t) / sum_{a in A(i)} exp(z_i.z_a/t)); mean over
    anchors (base temperature = temperature, so no rescaling)."""
    n, v, _ = z.shape
    f = z.transpose(0, 1).reshape(n * v, -1)
    y = labels.repeat(v)
    self_mask = torch.eye(n * v, dtype=torch.bool, device=z.device)
    logits = (f @ f.T / temperature).masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (y[:, None] == y[None, :]) & ~self_mask
    per_anchor = -log_prob.masked_fill(~positive, 0.0).sum(1) / positive.sum(1).clamp(min=1)
    return per_anchor.mean()


def identical_loss(labels: torch.Tensor, temperature: float, views: int = 2) -> float:
    """The SupCon loss of this batch if every projection were the same point (the collapse value)."""
    z = F.normalize(torch.ones(len(labels), views, 2), dim=2)
    return float(supcon_loss(z, labels.cpu(), temperature))


def loss_stats(loss: list[float], identical: list[float]) -> dict[str, Any]:
    """Final loss (mean of the last tenth of the steps) against the identical-embedding value, their ratio in
    the 10 steps up to step EARLY (or the last step, in shorter runs) and the first step where the 10-step
    running mean of the loss drops below BELOW x that value (None: never)."""
    if not loss:
        return {}

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    tail = max(1, len(loss) // 10)
    early = min(EARLY, len(loss))
    first = next((s + 1 for s in range(len(loss))
                  if mean(loss[max(0, s + 1 - WINDOW):s + 1]) < BELOW * mean(identical[max(0, s + 1 - WINDOW):s + 1])),
                 None)
    return {"final_loss": round(mean(loss[-tail:]), 5), "final_identical": round(mean(identical[-tail:]), 5),
            "final_ratio": round(mean(loss[-tail:]) / mean(identical[-tail:]), 4),
            f"ratio_at_{EARLY}": round(mean(loss[max(0, early - WINDOW):early])
                                       / mean(identical[max(0, early - WINDOW):early]), 4),
            "first_step_below": first}


class FullBatches:
    """Endless random permutations of n rows cut into full batches of min(batch, n) (dsc's steps budget)."""

    def __init__(self, n: int, batch: int, seed: int) -> None:
        self.n, self.batch = n, min(batch, n)
        self.gen = torch.Generator().manual_seed(seed)
        self.queue = torch.zeros(0, dtype=torch.int64)

    def next(self) -> torch.Tensor:
        while len(self.queue) < self.batch:
            self.queue = torch.cat([self.queue, torch.randperm(self.n, generator=self.gen)])
        rows, self.queue = self.queue[:self.batch], self.queue[self.batch:]
        return rows


def round_ends(total: int, rounds: int) -> set[int]:
    """Steps after which a validation round runs (dsc's budget: k * total // rounds)."""
    return {k * total // rounds for k in range(1, rounds + 1)}


def build_encoder(args: argparse.Namespace, seed: int):
    """dsc's backbone for ``args``, initialised from ``seed`` as dsc builds it; (backbone, output width)."""
    from dsc.backbones import create_backbone

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        bb = create_backbone(args.backbone, stem=args.stem, image_size=args.size)
    bb.module.eval()
    with torch.no_grad():
        dim = int(bb.module(torch.zeros(1, 3, args.size, args.size)).shape[-1])
    bb.module.train()
    return bb, dim


def resolved_augmentation(args: argparse.Namespace) -> str:
    """The recipe dsc's ``--augmentation`` resolves to at ``--size`` (dsc.train.common.resolve_augmentation)."""
    from dsc.train.common import resolve_augmentation

    return resolve_augmentation(args.augmentation, args.size)


def torchvision_transform(aug: str, size: int, mean: list[float], std: list[float]):
    """SupContrast's per-image training transform (PIL in, normalised tensor out)."""
    from torchvision import transforms as T

    if aug == "supcon":
        steps = [T.RandomResizedCrop(size, scale=(0.2, 1.0)), T.RandomHorizontalFlip(),
                 T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2)]
    elif aug == "light":
        steps = [T.RandomResizedCrop(size, scale=(0.6, 1.0)), T.RandomHorizontalFlip()]
    else:
        steps = [T.Resize(size)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(mean, std)])


def views(images: torch.Tensor, rows: torch.Tensor, transform, n_views: int) -> torch.Tensor:
    """``n_views`` views of each row, view-major [n_views * B, 3, S, S], one PIL image per row."""
    from PIL import Image

    pils = [Image.fromarray(images[int(r)].numpy()) for r in rows]
    return torch.cat([torch.stack([transform(p) for p in pils]) for _ in range(n_views)])


def mean_std(bb) -> tuple[list[float], list[float]]:
    dc = bb.data_config
    return [float(m) for m in dc["mean"]], [float(s) for s in dc["std"]]


# --------------------------------------------------------------------------------------- SupCon: reference
def reference_supcon(arrays: Arrays, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """The SupContrast-style loop; returns the run's figures and curves."""
    from dsc.train.common import lr_at  # the shared schedule only

    dev = device()
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed + 2)
        bb, dim = build_encoder(args, seed)
        head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, 128))
        encoder = bb.module
        net = nn.Sequential(encoder, head).to(dev)
        mean, std = mean_std(bb)
        transform = torchvision_transform(resolved_augmentation(args), args.size, mean, std)
        opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
        batches = FullBatches(len(arrays.train_y), args.batch_size, seed)
        total, ends = args.steps, round_ends(args.steps, args.rounds)
        warmup = args.warmup_rounds * total // args.rounds
        losses, ident, val_curve = [], [], []
        best_state, best_val = copy.deepcopy(encoder.state_dict()), -math.inf
        net.train()
        for step in range(total):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, warmup, args.lr)
            rows = batches.next()
            y = arrays.train_y[rows]
            x = views(arrays.train_x, rows, transform, 2).to(dev)
            z = F.normalize(net(x).float(), dim=1)
            n = len(rows)
            loss = supcon_loss(torch.stack([z[:n], z[n:]], dim=1), y.to(dev), args.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(round(float(loss.detach()), 5))
            if not math.isfinite(losses[-1]):
                raise FloatingPointError(f"the reference loss became {losses[-1]} at step {step + 1}")
            ident.append(round(identical_loss(y, args.temperature), 5))
            if step + 1 in ends:
                val = knn_top1(apply(encoder, arrays.train_x, mean, std, dev), arrays.train_y,
                               apply(encoder, arrays.val_x, mean, std, dev), arrays.val_y)
                val_curve.append([step + 1, round(val, 6)])
                if val > best_val or math.isnan(val):
                    best_val, best_state = val, copy.deepcopy(encoder.state_dict())
                log.info("reference seed %d step %d: loss %.4f (identical %.4f), val kNN %.4f", seed, step + 1,
                         losses[-1], ident[-1], val)
        train_s = time.perf_counter() - t0
        cos = projection_cosines(net, arrays.train_x, mean, std, dev, 2 * batches.batch)
        if args.select == "best":
            encoder.load_state_dict(best_state)
        probe = probe_encoder(encoder, arrays, mean, std, dev, seed, args)
    return {"seed": seed, **probe, **loss_stats(losses, ident), **cos, "val_knn_final": val_curve[-1][1],
            "steps": total, "images": total * batches.batch, "train_s": round(train_s, 1), "stem": bb.stem,
            "curves": {"loss": losses, "identical": ident, "val_knn": val_curve}}


def probe_encoder(encoder: nn.Module, arrays: Arrays, mean: list[float], std: list[float], dev: torch.device,
                  seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark's linear probe on this encoder's features (train -> fit, val -> epoch, test -> top-1)."""
    feats = [(apply(encoder, x, mean, std, dev), y) for x, y in
             ((arrays.train_x, arrays.train_y), (arrays.val_x, arrays.val_y), (arrays.test_x, arrays.test_y))]
    return linear_probe(*feats, n_classes=len(arrays.classes), seed=seed, epochs=args.probe_epochs)


# ------------------------------------------------------------------------------------------ SupCon: dsc
@contextlib.contextmanager
def recording(task_cls: type, identical: Callable[[torch.Tensor], float] | None = None) -> Iterator[dict]:
    """Record the loss of every step of a dsc task (and the identical-embedding loss of its batch) and the
    task object, by wrapping ``task_cls.compute`` (the training itself is unchanged)."""
    rec: dict[str, Any] = {"task": None, "loss": [], "identical": []}
    original = task_cls.compute

    def compute(self, model, batch, ctx):
        loss = original(self, model, batch, ctx)
        rec["task"] = self
        rec["loss"].append(round(float(loss.detach()), 5))
        if identical is not None:
            rec["identical"].append(round(identical(batch["labels"]), 5))
        return loss

    task_cls.compute = compute
    try:
        yield rec
    finally:
        task_cls.compute = original


def train_settings(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    return {"backbone": args.backbone, "stem": args.stem, "image_size": args.size, "batch_size": args.batch_size,
            "steps": args.steps, "epochs": args.rounds, "lr": args.lr, "warmup_epochs": args.warmup_rounds,
            "augmentation": args.augmentation, "seed": seed, "amp": args.amp}


def dsc_supcon(arrays: Arrays, args: argparse.Namespace, seed: int, work: Path) -> dict[str, Any]:
    """``dsc pretrain`` + ``dsc probe`` through the Python API, plus the benchmark's probe of its encoder."""
    from dsc.probe import probe
    from dsc.settings import PretrainSettings, ProbeSettings
    from dsc.train.checkpoint import load_encoder
    from dsc.train.pretrain import PretrainTask, pretrain

    dev = device()
    run_dir = work / f"{arrays.path.stem}_dsc_supcon_s{seed}"
    settings = PretrainSettings(**train_settings(args, seed), temperature=args.temperature, head=args.head)
    t0 = time.perf_counter()
    with recording(PretrainTask, lambda y: identical_loss(y, args.temperature)) as rec:
        result = pretrain(arrays.path, run_dir, settings, force=True)
    train_s = time.perf_counter() - t0
    task = rec["task"]
    bb, _ = load_encoder(run_dir, args.select, device=str(dev))
    mean, std = mean_std(bb)
    step_views = 2 * min(args.batch_size, len(arrays.train_y))
    cos = projection_cosines(task.net, arrays.train_x, mean, std, dev, step_views)  # the last weights
    ours = probe_encoder(bb.module, arrays, mean, std, dev, seed, args)
    own = probe(run_dir, ProbeSettings(seed=seed, corruptions=False, checkpoint=args.select), force=True)
    rows = result.metrics
    val_curve = [[r["step"], r.get("val_knn_top1")] for r in rows]
    health = {k: rows[-1][k] for k in ("proj_cos", "loss_collapsed") if k in rows[-1]}
    return {"seed": seed, **ours, "dsc_probe_top1": own.metrics["test"]["top1"],
            **loss_stats(rec["loss"], rec["identical"]), **cos, "val_knn_final": val_curve[-1][1],
            "steps": result.optimizer_steps, "images": result.images_seen, "train_s": round(train_s, 1),
            "stem": bb.stem, "dsc_last_round": health,
            "curves": {"loss": rec["loss"], "identical": rec["identical"], "val_knn": val_curve,
                       "rounds": [{k: v for k, v in r.items() if k not in ("time_s",)} for r in rows]}}


# ------------------------------------------------------------------------------------------------- CE arms
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, mean, std, dev: torch.device) -> float:
    if len(y) == 0:
        return float("nan")
    return round(float((apply(net, x, mean, std, dev).argmax(1) == y).float().mean()), 6)


def plain_ce(arrays: Arrays, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """A plain torchvision-style cross-entropy loop (one view per image) with dsc's backbone and budget."""
    from dsc.train.common import lr_at  # the shared schedule only

    dev = device()
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed + 2)
        bb, dim = build_encoder(args, seed)
        net = nn.Sequential(bb.module, nn.Linear(dim, len(arrays.classes))).to(dev)
        mean, std = mean_std(bb)
        transform = torchvision_transform(resolved_augmentation(args), args.size, mean, std)
        opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
        batches = FullBatches(len(arrays.train_y), args.batch_size, seed)
        total, ends = args.steps, round_ends(args.steps, args.rounds)
        warmup = args.warmup_rounds * total // args.rounds
        losses, val_curve = [], []
        best_state, best_val = copy.deepcopy(net.state_dict()), -math.inf
        net.train()
        for step in range(total):
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, warmup, args.lr)
            rows = batches.next()
            loss = F.cross_entropy(net(views(arrays.train_x, rows, transform, 1).to(dev)).float(),
                                   arrays.train_y[rows].to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(round(float(loss.detach()), 5))
            if not math.isfinite(losses[-1]):
                raise FloatingPointError(f"the torchvision CE loss became {losses[-1]} at step {step + 1}")
            if step + 1 in ends:
                val = accuracy(net, arrays.val_x, arrays.val_y, mean, std, dev)
                val_curve.append([step + 1, val])
                if val > best_val or math.isnan(val):
                    best_val, best_state = val, copy.deepcopy(net.state_dict())
        train_s = time.perf_counter() - t0
        last_train = accuracy(net, arrays.train_x, arrays.train_y, mean, std, dev)
        if args.select == "best":
            net.load_state_dict(best_state)
        return {"seed": seed, "test_top1": accuracy(net, arrays.test_x, arrays.test_y, mean, std, dev),
                "val_top1": accuracy(net, arrays.val_x, arrays.val_y, mean, std, dev),
                "train_acc": accuracy(net, arrays.train_x, arrays.train_y, mean, std, dev),
                "train_acc_last": last_train,
                "final_loss": round(sum(losses[-max(1, total // 10):]) / max(1, total // 10), 5), "steps": total,
                "images": total * batches.batch, "train_s": round(train_s, 1),
                "curves": {"loss": losses, "val_top1": val_curve}}


def dsc_ce(arrays: Arrays, args: argparse.Namespace, seed: int, work: Path) -> dict[str, Any]:
    """``dsc baseline`` through the Python API; test top-1 from its metrics.json, train accuracy measured here."""
    from dsc.settings import BaselineSettings
    from dsc.train.baseline import BaselineTask, baseline
    from dsc.train.checkpoint import load_checkpoint

    dev = device()
    run_dir = work / f"{arrays.path.stem}_dsc_ce_s{seed}"
    settings = BaselineSettings(**train_settings(args, seed), corruptions=False)
    t0 = time.perf_counter()
    with recording(BaselineTask) as rec:
        result = baseline(arrays.path, run_dir, settings, force=True)
    train_s = time.perf_counter() - t0
    task = rec["task"]
    mean, std = mean_std(task.backbone)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if args.select == "last":
        load_checkpoint(run_dir, "last", task.parts())
    selected = {"test_top1_here": accuracy(task.net, arrays.test_x, arrays.test_y, mean, std, dev),
                "train_acc": accuracy(task.net, arrays.train_x, arrays.train_y, mean, std, dev)}
    load_checkpoint(run_dir, "last", task.parts())
    loss = rec["loss"]
    return {"seed": seed, "test_top1": metrics["test"]["top1"], "val_top1": metrics["val"]["top1"], **selected,
            "train_acc_last": accuracy(task.net, arrays.train_x, arrays.train_y, mean, std, dev),
            "final_loss": round(sum(loss[-max(1, len(loss) // 10):]) / max(1, len(loss) // 10), 5),
            "steps": result.optimizer_steps, "images": result.images_seen, "train_s": round(train_s, 1),
            "curves": {"loss": loss, "val_top1": [[r["step"], r.get("val_top1")] for r in result.metrics]}}


# ------------------------------------------------------------------------------------------------ summary
SUMMARY_KEYS = ("probe_top1", "dsc_probe_top1", "probe_val_top1", "val_knn_final", "final_loss", "final_identical",
                "final_ratio", f"ratio_at_{EARLY}", "proj_cos_mean", "proj_cos_min", "test_top1", "test_top1_here",
                "val_top1", "train_acc", "train_acc_last", "train_s")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds of every numeric figure in SUMMARY_KEYS."""
    summary: dict[str, Any] = {"seeds": [r["seed"] for r in runs if "error" not in r]}
    failed = [r["seed"] for r in runs if "error" in r]
    if failed:
        summary["failed_seeds"] = failed
    for key in SUMMARY_KEYS:
        vals = [r[key] for r in runs if isinstance(r.get(key), (int, float)) and not math.isnan(r[key])]
        if vals:
            summary[key] = {"mean": round(statistics.fmean(vals), 5),
                            "std": round(statistics.stdev(vals), 5) if len(vals) > 1 else 0.0}
    firsts = [r.get("first_step_below") for r in runs if "first_step_below" in r]
    if firsts:
        summary["first_step_below"] = firsts
    return summary


def verdict(ours: dict[str, Any], ref: dict[str, Any], key: str) -> dict[str, Any]:
    """dsc's mean >= the reference's mean minus the reference's standard deviation (None: no figures)."""
    if key not in ours or key not in ref:
        return {"metric": key, "pass": None}
    d, r = ours[key], ref[key]
    return {"metric": key, "dsc": d["mean"], "reference": r["mean"], "reference_std": r["std"],
            "margin": round(d["mean"] - (r["mean"] - r["std"]), 5), "pass": d["mean"] >= r["mean"] - r["std"]}


def guarded(fn: Callable[..., dict[str, Any]], seed: int, *args: Any) -> dict[str, Any]:
    """One run; a run that diverges (dsc's DivergedError, a non-finite reference loss) or fails on its inputs is
    recorded as ``{"seed", "error"}`` and the benchmark goes on (summaries skip it)."""
    from dsc.errors import DscError

    try:
        return fn(*args)
    except (DscError, FloatingPointError) as exc:
        log.error("%s, seed %d: %s", fn.__name__, seed, exc)
        return {"seed": seed, "error": f"{type(exc).__name__}: {exc}"}


def run_dataset(arrays: Arrays, args: argparse.Namespace, work: Path, res: dict[str, Any],
                save: Callable[[], None]) -> None:
    """Every arm and seed on one dataset into ``res``; ``save`` is called after each run (partial results)."""
    res["data"] = {"path": str(arrays.path), **arrays.counts()}
    arms = ([] if args.ce_only else [("supcon", "dsc", dsc_supcon), ("supcon", "reference", reference_supcon)]) + \
        ([("ce", "dsc", dsc_ce), ("ce", "torchvision", plain_ce)] if args.ce or args.ce_only else [])
    for kind, arm, fn in arms:
        runs: list[dict[str, Any]] = []
        res.setdefault(kind, {})[arm] = {"runs": runs}
        for seed in args.seeds:
            extra = (work,) if arm == "dsc" else ()
            runs.append(guarded(fn, seed, arrays, args, seed, *extra))
            res[kind][arm]["summary"] = summarise(runs)
            save()
    for kind, other, metric in (("supcon", "reference", "probe_top1"), ("ce", "torchvision", "test_top1")):
        if kind in res:
            res[kind]["verdict"] = verdict(res[kind]["dsc"]["summary"], res[kind][other]["summary"], metric)
    save()


# ------------------------------------------------------------------------------------------------- output
def _ms(s: dict[str, Any], key: str, pct: bool = True) -> str:
    v = s.get(key)
    if not v:
        return "-"
    f = 100 if pct else 1
    return f"{f * v['mean']:.1f} ± {f * v['std']:.1f}" if pct else f"{v['mean']:.3f} ± {v['std']:.3f}"


def _mean(s: dict[str, Any], key: str) -> str:
    return f"{s[key]['mean']:.3f}" if key in s else "-"


def _ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> str:
    if key not in a or key not in b or not b[key]["mean"]:
        return "-"
    return f"{a[key]['mean'] / b[key]['mean']:.2f}x"


def _verdict_text(v: dict[str, Any]) -> str:
    return {True: "dsc >= ref - 1 std", False: "[red]dsc < ref - 1 std[/]", None: "no figures"}[v["pass"]]


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    s = results["settings"]
    stems = sorted({run.get("stem") for res in results["datasets"].values() for arm in res.values()
                    if isinstance(arm, dict) for side in arm.values() if isinstance(side, dict)
                    for run in side.get("runs", [])} - {None})
    table = Table(title=f"learning: dsc vs reference loops, same data and budget ({s['backbone']}, stem "
                        f"{'/'.join(stems) or s['stem']}, {s['size']} px, {s['augmentation_resolved']} views, "
                        f"batch {s['batch_size']}, {s['steps']} steps, {s['rounds']} rounds, seeds {s['seeds']}; "
                        f"head {s['head']}; mean ± std over seeds, top-1 in %)", title_justify="left")
    for col in ("dataset", "figure", "dsc", "baseline", "dsc / baseline", "verdict"):
        table.add_column(col, justify="right" if col in ("dsc", "baseline", "dsc / baseline") else "left")
    for name, res in results["datasets"].items():
        if "skipped" in res:
            table.add_row(name, f"skipped: {res['skipped']}", "-", "-", "-", "")
            continue
        for kind in ("supcon", "ce"):
            for arm in res.get(kind, {}).values():
                for run in arm.get("runs", []):
                    if "error" in run:
                        table.add_row(name, f"[red]{kind} seed {run['seed']} failed: {run['error']}[/]", "", "", "",
                                      "")
        if "supcon" in res:
            d, r, v = res["supcon"]["dsc"]["summary"], res["supcon"]["reference"]["summary"], res["supcon"]["verdict"]
            table.add_row(name, "SupCon+probe test top-1 vs SupContrast-style loop (same probe)",
                          _ms(d, "probe_top1"), _ms(r, "probe_top1"), _ratio(d, r, "probe_top1"), _verdict_text(v))
            table.add_row(name, "  dsc's own `dsc probe` test top-1", _ms(d, "dsc_probe_top1"), "-", "-", "")
            table.add_row(name, "  val k-NN top-1, last round", _ms(d, "val_knn_final"), _ms(r, "val_knn_final"),
                          _ratio(d, r, "val_knn_final"), "")
            table.add_row(name, "  final loss (identical-embedding value)",
                          f"{_ms(d, 'final_loss', False)} ({_mean(d, 'final_identical')})",
                          f"{_ms(r, 'final_loss', False)} ({_mean(r, 'final_identical')})", "", "")
            table.add_row(name, f"  loss / identical value at step {min(EARLY, s['steps'])} (10-step mean)",
                          _ms(d, f"ratio_at_{EARLY}", False), _ms(r, f"ratio_at_{EARLY}", False), "", "")
            table.add_row(name, f"  first step with loss < {BELOW} x identical (per seed)",
                          str(d.get("first_step_below")), str(r.get("first_step_below")), "", "")
            table.add_row(name, "  projection cosine at the end, mean / min",
                          f"{_mean(d, 'proj_cos_mean')} / {_mean(d, 'proj_cos_min')}",
                          f"{_mean(r, 'proj_cos_mean')} / {_mean(r, 'proj_cos_min')}", "", "")
            table.add_row(name, "  training time, s", _ms(d, "train_s", False), _ms(r, "train_s", False), "", "")
        if "ce" in res:
            d, p, v = res["ce"]["dsc"]["summary"], res["ce"]["torchvision"]["summary"], res["ce"]["verdict"]
            table.add_row(name, "CE test top-1 vs torchvision loop", _ms(d, "test_top1"), _ms(p, "test_top1"),
                          _ratio(d, p, "test_top1"), _verdict_text(v))
            table.add_row(name, "  train accuracy, selected / last weights",
                          f"{_ms(d, 'train_acc')} / {_ms(d, 'train_acc_last')}",
                          f"{_ms(p, 'train_acc')} / {_ms(p, 'train_acc_last')}", "", "")
            table.add_row(name, "  val top-1 (selected)", _ms(d, "val_top1"), _ms(p, "val_top1"), "", "")
    console = out if sys.stdout.isatty() else Console(width=200)  # logs: no wrapped figures
    console.print(table)


def plot_curves(results: dict[str, Any], path: Path) -> None:
    """Loss / identical-embedding value per step and val k-NN per round, both arms, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, r in results["datasets"].items() if "supcon" in r]
    if not names:
        return
    fig, axes = plt.subplots(len(names), 2, figsize=(11, 3.6 * len(names)), squeeze=False)
    for (ax_loss, ax_val), name in zip(axes, names, strict=True):
        for arm, colour in (("dsc", "tab:blue"), ("reference", "tab:orange")):
            for i, run in enumerate(results["datasets"][name]["supcon"][arm]["runs"]):
                c = run["curves"]
                ratio = [a / b for a, b in zip(c["loss"], c["identical"], strict=True)]
                label = arm if i == 0 else None
                ax_loss.plot(range(1, len(ratio) + 1), ratio, color=colour, alpha=0.7, lw=0.8, label=label)
                pts = [(s, v) for s, v in c["val_knn"] if v is not None]
                ax_val.plot([s for s, _ in pts], [v for _, v in pts], "o-", color=colour, alpha=0.7, label=label)
        ax_loss.axhline(1.0, color="grey", ls="--", lw=0.8)
        ax_loss.set(title=f"{name}: SupCon loss / identical-embedding loss", xlabel="optimizer step")
        ax_val.set(title=f"{name}: val k-NN top-1", xlabel="optimizer step")
        ax_loss.legend()
        ax_val.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# --------------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="toyparts only, 12 objects/class, resnet18 at 32 px, "
                    "batch 32, 40 steps in 4 rounds, seed 0")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--curves", type=Path, default=None, help="PNG of the SupCon curves (matplotlib)")
    ap.add_argument("--datasets", default=None, help="comma-separated: toyparts,carparts (quick: toyparts)")
    ap.add_argument("--objects", type=int, default=None, help="toyparts objects per class, 3 images each "
                    "(default 40; quick 12)")
    ap.add_argument("--carparts-classes", type=int, default=20)
    ap.add_argument("--backbone", default="timm:resnet18")
    ap.add_argument("--stem", default="auto", choices=("auto", "imagenet", "small"))
    ap.add_argument("--size", type=int, default=None, help="image size (default 64; quick 32)")
    ap.add_argument("--batch-size", type=int, default=None, help="default 64; quick 32")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 300; quick 40)")
    ap.add_argument("--rounds", type=int, default=None, help="validation rounds (default 10; quick 4)")
    ap.add_argument("--warmup-rounds", type=int, default=0)
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--head", default="mlp-bn", choices=("mlp-bn", "mlp"), help="dsc's projection head (the "
                    "reference always uses SupContrast's Linear-ReLU-Linear)")
    ap.add_argument("--augmentation", default="auto", choices=("auto", "supcon", "light"),
                    help="dsc's views (auto, dsc's default: light at <= 64 px, else supcon); the reference makes "
                    "the resolved recipe with torchvision")
    ap.add_argument("--amp", default="off", choices=("off", "auto", "bf16", "fp16"),
                    help="dsc's autocast (the reference runs in float32; CPU: always off)")
    ap.add_argument("--seeds", default=None, help="comma-separated (default 0,1,2; quick 0)")
    ap.add_argument("--select", default="best", choices=("best", "last"), help="weights probed/evaluated: best "
                    "round by val (dsc's default) or the last")
    ap.add_argument("--probe-epochs", type=int, default=100)
    ap.add_argument("--ce", action="store_true", help="also the CE arms (dsc baseline vs a torchvision loop)")
    ap.add_argument("--ce-only", action="store_true", help="only the CE arms")
    ap.add_argument("--work", type=Path, default=None, help="keep stores and runs here (default: a temp folder)")
    args = ap.parse_args(argv)
    q = args.quick
    args.datasets = (args.datasets or ("toyparts" if q else "toyparts,carparts")).split(",")
    args.objects = args.objects or (12 if q else 40)
    args.size = args.size or (32 if q else 64)
    args.batch_size = args.batch_size or (32 if q else 64)
    args.steps = args.steps or (40 if q else 300)
    args.rounds = args.rounds or (4 if q else 10)
    args.seeds = [int(s) for s in (args.seeds or ("0" if q else "0,1,2")).split(",")]
    if args.rounds > args.steps:
        ap.error(f"--rounds {args.rounds} is more than --steps {args.steps}")
    unknown = set(args.datasets) - {"toyparts", "carparts"}
    if unknown:
        ap.error(f"unknown dataset(s) {sorted(unknown)}; choose from toyparts, carparts")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k not in ("json", "curves", "work")}
    results: dict[str, Any] = {"benchmark": "learning", "settings": {
        **settings, "augmentation_resolved": resolved_augmentation(args), "threads": torch.get_num_threads(),
        "device": str(device()), "below": BELOW,
        "early_steps": EARLY, "knn": {"k": 20, "t": 0.07}}, "datasets": {}}
    t0 = time.perf_counter()

    def save() -> None:
        if args.json:
            args.json.write_text(json.dumps(results, indent=1) + "\n")

    with contextlib.ExitStack() as stack:
        work = args.work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dsc-bench-learning-")))
        work.mkdir(parents=True, exist_ok=True)
        for name in args.datasets:
            if name == "carparts" and not CARPARTS.is_dir():
                results["datasets"]["carparts"] = {"skipped": f"{CARPARTS} not found"}
                continue
            label = f"toyparts5_{args.objects}obj" if name == "toyparts" else f"carparts{args.carparts_classes}"
            store = make_store(work, name, args.size, args.objects, args.carparts_classes)
            results["datasets"][label] = {}
            run_dataset(load_arrays(store, args.size), args, work, results["datasets"][label], save)
    results["wall_s"] = round(time.perf_counter() - t0, 1)
    save()
    print_table(results)
    if args.curves:
        plot_curves(results, args.curves)
    return results


if __name__ == "__main__":
    main()
