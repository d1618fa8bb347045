"""The training engine shared by ``dsc pretrain`` and ``dsc baseline``.

A *task* (pretrain.py, baseline.py) owns the model and the loss; this module owns everything around it:
the ``train`` shell (lock, processes, inputs, run directory), data loading, the task contract, the
optimizer, cosine schedule with warm-up and AMP choice. The loop itself, ``TrainLoop`` in
dsc/train/loop.py, owns the seeded generators, the training budget (dsc/train/budget.py), DDP, the
evaluation rounds with throughput and data-wait accounting, validation-based checkpoint selection, exact
resume and the NaN guard.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dsc import console, parallel
from dsc.console import count
from dsc.data.samplers import VariantIndex
from dsc.data.stores import ImageSet, TrainingInputs, load_real, load_synthetic, open_inputs
from dsc.data.views import ViewMaker
from dsc.errors import ConfigError, DscError, InputError
from dsc.provenance import Timings
from dsc.settings import TrainSettings
from dsc.train.run_dir import RunDir

log = logging.getLogger(__name__)


class DivergedError(DscError):
    """The loss became NaN or infinite."""


# ------------------------------------------------------------------------------------------------- data
@dataclass
class TrainData:
    """Everything a training run reads, in memory (uint8 images at the training size)."""

    classes: list[str]
    pool: ImageSet  # positives (real train + extra synthetic) then negatives
    n_pos: int
    n_real: int  # the first n_real rows of the pool are the real train images
    val: ImageSet
    synthetic: ImageSet | None = None  # normal synthetic rows, for --synthetic-policy view
    variants: VariantIndex | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def pick_variants(self, rows: torch.Tensor, images: torch.Tensor, probability: float, gen: torch.Generator
                      ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``images`` (of pool ``rows``) with each real one replaced by one of its synthetic variants with
        ``probability`` (``--synthetic-policy view``), which rows were replaced and by which synthetic rows, so
        a task can take the variants' labels (soft labels); ``images, None, None`` without variants."""
        if self.variants is None:
            return images, None, None
        replace, syn_rows = self.variants.pick(self.pool.source_index[rows], probability, gen)
        replace &= rows < self.n_real
        if bool(replace.any()):
            images = images.clone()
            images[replace] = self.synthetic.images[syn_rows[replace]]
        return images, replace, syn_rows

    def has_mixed(self) -> bool:
        """Whether any training row (pool or ``view`` variant) has a soft label (``mix_weight`` > 0)."""
        return bool(self.pool.mixed.any()) or (self.synthetic is not None and bool(self.synthetic.mixed.any()))


def load_data(inputs: TrainingInputs, settings: TrainSettings, *, use_negatives: bool = True) -> TrainData:
    """Real train/val rows of DATA.h5, synthetic rows (extra or view) and OOD negatives."""
    size, store = settings.image_size, inputs.data
    classes = list(store.classes)
    drawn = few_shot_rows(store, settings)
    real = load_real(store, "train", size, only=drawn)
    if len(real) == 0:
        raise InputError(f"{store.path} has no train rows", hint="make DATA.h5 with `dsc subset` (train split)")
    val = load_real(store, "val", size)
    if len(val) == 0:
        log.warning("%s has no val rows: best checkpoint = last epoch", store.path)
    syn = ImageSet.concat([load_synthetic(s, size, ood=False, n_classes=len(classes), sources=drawn)
                           for s in inputs.synthetic], size, "synthetic")
    neg = ImageSet.concat([load_synthetic(s, size, ood=True, n_classes=len(classes), sources=drawn)
                           for s in inputs.negatives], size, "negatives") if use_negatives \
        else ImageSet.empty(size, "negatives")
    extra = settings.synthetic_policy == "extra" and len(syn) > 0
    positives = [real, syn] if extra else [real]
    pool = ImageSet.concat([*positives, neg], size, "pool")
    n_pos = len(real) + (len(syn) if extra else 0)
    data = TrainData(classes, pool, n_pos, len(real), val, counts={
        "train_real": len(real), "val": len(val), "synthetic": len(syn), "negatives": len(neg)})
    if bool(syn.mixed.any()):  # only stores with soft labels add the key (older run.json files stay as they were)
        data.counts["synthetic_mixed"] = int(syn.mixed.sum())
    if settings.synthetic_policy == "view" and len(syn):
        free = int((syn.source_index < 0).sum())
        if free:   # text-to-image images: no real image for them to stand in for
            log.warning("%d synthetic images have no source image (text-to-image): --synthetic-policy view never "
                        "uses them; train with --synthetic-policy extra to use them", free)
        data.synthetic, data.variants = syn, VariantIndex(syn.source_index)
    return data


def few_shot_rows(store: Any, settings: TrainSettings) -> np.ndarray | None:
    """The train rows of a few-shot run (``examples_per_class``; dsc's one draw, ``dsc.few_shot``), else None."""
    if settings.examples_per_class is None:
        return None
    from dsc.few_shot import draw

    rows = draw(store.labels, store.split, list(range(len(store.classes))), settings.examples_per_class,
                settings.few_shot_draw_seed)
    log.info("few-shot: %d train images per class at most (draw seed %d): %d images",
             settings.examples_per_class, settings.few_shot_draw_seed, len(rows))
    return rows


# --------------------------------------------------------------------------------------------- schedule
def lr_at(step: int, total: int, warmup: int, base: float, final_ratio: float = 1e-3) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine decay from ``base`` to ``base * final_ratio``."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    low = base * final_ratio
    return low + (base - low) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


#: ``--augmentation auto`` takes ``light`` up to this image size and ``supcon`` above it (docs/training.md, "Collapse").
LIGHT_AUGMENTATION_MAX_SIZE = 64


def resolve_augmentation(setting: str, image_size: int) -> str:
    """``auto``: SupContrast's strong views (crops down to 20 % of the image, colour jitter, grayscale) above
    64 px, ``light`` (crops of 60-100 %, flip) at 64 px and below, where the strong crops of small
    object images measured collapsed SupCon and an unfitted CE baseline; other values pass through."""
    if setting != "auto":
        return setting
    return "light" if image_size <= LIGHT_AUGMENTATION_MAX_SIZE else "supcon"


def make_optimizer(params: Sequence[nn.Parameter], settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum,
                               weight_decay=settings.weight_decay)
    return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: on GPU bf16 (or fp16 where bf16 is missing) for "auto"; always off on CPU."""
    if device.type != "cuda" or setting == "off":
        return None
    if setting == "fp16" or (setting == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


# ----------------------------------------------------------------------------------------------- tasks
class Task:
    """What differs between pre-training and the baseline. Subclasses set ``net`` and ``val_key``."""

    command: str = ""
    val_key: str = ""
    net: nn.Module

    def parts(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def prepare(self, rows: torch.Tensor, ctx: Context) -> dict[str, torch.Tensor]:
        """Model inputs and targets for this process's rows (pool indices), on the device. Called in order
        (possibly in a prefetch thread); it is the only user of ``ctx.aug_gen`` during an epoch."""
        raise NotImplementedError

    def compute(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> torch.Tensor:
        """The loss of a prepared batch."""
        raise NotImplementedError

    def validate(self, ctx: Context) -> float:
        raise NotImplementedError

    def finish(self, ctx: Context, run: RunDir, result: Result) -> None:
        """Called once after the last epoch (the baseline evaluates its best checkpoint on test)."""

    def epoch_stats(self) -> dict[str, Any]:
        """Training-health figures of the epoch just ended, added to its metrics row (and reset). Called on
        every process (it may all-reduce)."""
        return {}

    def record(self) -> dict[str, Any]:
        """Facts about how the task uses its data, added to ``run.json`` when the run starts."""
        return {}

    def end(self) -> None:
        """Called once when the training loop ends (complete or stopped), before ``finish``."""


@dataclass
class Context:
    """Run-time state handed to tasks."""

    env: parallel.DistEnv
    data: TrainData
    views: ViewMaker
    plain: ViewMaker
    aug_gen: torch.Generator
    amp: torch.dtype | None
    settings: TrainSettings

    def to_device(self, images: torch.Tensor) -> torch.Tensor:
        dev = self.env.device
        return images.pin_memory().to(dev, non_blocking=True) if dev.type == "cuda" else images


def build_backbone(settings: TrainSettings, seed: int):
    """The backbone with the stem ``settings.stem`` resolves to (dsc/stems.py), initialised from a scoped seed
    (timm builds models from the global RNG)."""
    from dsc.backbones import create_backbone

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = create_backbone(settings.backbone, pretrained=settings.pretrained, checkpoint=settings.checkpoint,
                                   stem=settings.stem, image_size=settings.image_size)
    return backbone  # its declared feature_dim is trusted (the plugin contract tests measure it)


def backbone_record(settings: TrainSettings, backbone: Any) -> dict[str, Any]:
    dc = {k: list(v) if isinstance(v, tuple) else v for k, v in backbone.data_config.items()}
    return {"name": settings.backbone, "model_id": backbone.model_id, "feature_dim": backbone.feature_dim,
            "data_config": dc, "pretrained": settings.pretrained,
            "checkpoint": str(settings.checkpoint) if settings.checkpoint else None,
            "stem": backbone.stem, "stem_reason": backbone.stem_reason, "weights": weights_record(backbone)}


def weights_record(backbone: Any) -> dict[str, Any] | None:
    """The file the backbone's weights came from and its SHA-256 (first 16 hex digits); None: random init."""
    from dsc.provenance import file_sha256

    path = getattr(backbone, "weights_file", None)
    if path is None or not Path(path).is_file():
        return None
    return {"file": str(Path(path).resolve()), "sha256_16": file_sha256(Path(path))[:16]}


@dataclass
class Result:
    run_dir: Path
    epochs: int
    best_epoch: int | None
    best_val: float | None
    metrics: list[dict[str, Any]]
    status: str
    timings: dict[str, float]
    main: bool = True  # False in the non-main processes of a multi-process run
    optimizer_steps: int = 0
    images_seen: int = 0
    already_complete: bool = False  # --resume found the run finished and did nothing


def train(task_factory, command: str, settings: TrainSettings, sources: dict[str, str], data_path: Path,
          synthetic: Sequence[Path], negatives: Sequence[Path], output: Path, *, force: bool = False,
          resume: bool = False, stop_after: int | None = None, use_negatives: bool = True,
          extra_info: dict[str, Any] | None = None) -> Result:
    """Run (or resume) a training command end to end; ``stop_after`` ends early after that many epochs
    of this call (used by tests to simulate an interruption)."""
    from dsc.backbones import check_backbone
    from dsc.jobs import Job
    from dsc.train.loop import TrainLoop

    timings = Timings()
    env = parallel.setup_training()
    if not env.main:
        logging.getLogger().setLevel(logging.WARNING)  # one process reports
    try:
        # RUN.lock, the output check, the run folder and the resume rule: dsc/jobs.py (work in place: RUN/)
        with Job(command, output, force=force, resume=resume, work=output) as job:
            check_backbone(settings.backbone, pretrained=settings.pretrained and not settings.checkpoint)
            with timings.stage("load"):
                inputs = open_inputs(data_path, synthetic, negatives)
                settings, sources = with_image_size(settings, sources, inputs.data)
                if negatives and not use_negatives:
                    raise ConfigError("--negatives were given but this configuration does not use them",
                                      hint="pass --ood-loss extra-class or outlier-exposure, or drop --negatives")
                job.check()
                resuming = job.begin(marker="run.json")
                run = RunDir(output)
                sjson = settings.model_dump(mode="json")
                record = inputs.record()
                if resuming:
                    info = run.check_resume(command, sjson, record)
                    if info.get("status") == "complete":  # nothing to resume: leave every file as it is
                        return _already_complete(run, info, env.main)
                with console.status(f"reading {_stores_read(data_path, synthetic, negatives, use_negatives)} "
                                    f"at {settings.image_size} px…"):
                    data = load_data(inputs, settings, use_negatives=use_negatives)
            with torch.random.fork_rng(devices=[env.device] if env.device.type == "cuda" else []):
                torch.manual_seed(settings.seed + 2)
                return TrainLoop(task_factory, command, settings, sources, env, run, data, record, resuming,
                                 timings, stop_after, extra_info or {}).run()
    finally:
        env.teardown()


def _stores_read(data: Path, synthetic: Sequence[Path], negatives: Sequence[Path], use_negatives: bool) -> str:
    """``data.h5`` or ``data.h5 and 2 more stores`` (for the loading spinner)."""
    more = len(synthetic) + (len(negatives) if use_negatives else 0)
    return Path(data).name + (f" and {count(more, 'more store')}" if more else "")


def with_image_size(settings: TrainSettings, sources: dict[str, str], data: Any
                    ) -> tuple[TrainSettings, dict[str, str]]:
    """``settings`` with the training image size resolved for DATA.h5 (dsc/train/image_size.py), and
    ``sources`` saying where it came from."""
    from dsc.train.image_size import native_size, resolve_image_size, store_resolution

    size, note = resolve_image_size(settings.image_size, store_resolution(data),
                                    lambda: native_size(settings.backbone), store_name=str(data.path))
    return settings.model_copy(update={"image_size": size}), {**sources, "image_size": note} if note else sources


def _already_complete(run: RunDir, info: dict[str, Any], main: bool) -> Result:
    """The result of a finished run, read from its files (``--resume`` on it changes nothing)."""
    best_val = info.get("best_val")
    return Result(run.path, int(info.get("epochs_done") or 0), info.get("best_epoch"), best_val,
                  run.read_metrics(), "complete", dict(info.get("timings") or {}), main,
                  int(info.get("optimizer_steps") or 0), int(info.get("images_seen") or 0), already_complete=True)
