"""The training engine shared by ``dsc pretrain`` and ``dsc baseline``.

A *task* (pretrain.py, baseline.py) owns the model and the loss; this module owns everything around it:
run directory, data loading, seeded generators, the training budget (dsc/train/budget.py), optimizer and
cosine schedule with warm-up, AMP, DDP, the loop of evaluation rounds with throughput and data-wait
accounting, validation-based checkpoint selection, exact resume and the NaN guard.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dsc import console, interrupts, parallel
from dsc.console import count
from dsc.data.samplers import BatchPlan, VariantIndex
from dsc.data.stores import ImageSet, TrainingInputs, load_real, load_synthetic, open_inputs
from dsc.data.views import ViewMaker
from dsc.errors import ConfigError, DscError, InputError
from dsc.provenance import Timings
from dsc.settings import TrainSettings
from dsc.train.budget import make_budget, make_stream
from dsc.train.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from dsc.train.run_dir import RunDir, read_run_info, settings_hash

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

    def with_variants(self, rows: torch.Tensor, images: torch.Tensor, probability: float,
                      gen: torch.Generator) -> torch.Tensor:
        """``images`` (of pool ``rows``) with each real one replaced by one of its synthetic variants with
        ``probability`` (``--synthetic-policy view``); ``images`` itself when nothing is replaced."""
        if self.variants is None:
            return images
        replace, syn_rows = self.variants.pick(self.pool.source_index[rows], probability, gen)
        replace &= rows < self.n_real
        if bool(replace.any()):
            images = images.clone()
            images[replace] = self.synthetic.images[syn_rows[replace]]
        return images


def load_data(inputs: TrainingInputs, settings: TrainSettings, *, use_negatives: bool = True) -> TrainData:
    """Real train/val rows of DATA.h5, synthetic rows (extra or view) and OOD negatives."""
    size, store = settings.image_size, inputs.data
    classes = list(store.classes)
    real = load_real(store, "train", size)
    if len(real) == 0:
        raise InputError(f"{store.path} has no train rows", hint="make DATA.h5 with `dsc subset` (train split)")
    val = load_real(store, "val", size)
    if len(val) == 0:
        log.warning("%s has no val rows: best checkpoint = last epoch", store.path)
    syn = ImageSet.concat([load_synthetic(s, size, ood=False, n_classes=len(classes)) for s in inputs.synthetic],
                          size, "synthetic")
    neg = ImageSet.concat([load_synthetic(s, size, ood=True, n_classes=len(classes)) for s in inputs.negatives],
                          size, "negatives") if use_negatives else ImageSet.empty(size, "negatives")
    extra = settings.synthetic_policy == "extra" and len(syn) > 0
    positives = [real, syn] if extra else [real]
    pool = ImageSet.concat([*positives, neg], size, "pool")
    n_pos = len(real) + (len(syn) if extra else 0)
    data = TrainData(classes, pool, n_pos, len(real), val, counts={
        "train_real": len(real), "val": len(val), "synthetic": len(syn), "negatives": len(neg)})
    if settings.synthetic_policy == "view" and len(syn):
        data.synthetic, data.variants = syn, VariantIndex(syn.source_index)
    return data


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
        """Training-health figures of the epoch just ended, added to its metrics row (and reset)."""
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
            "stem": backbone.stem, "stem_reason": backbone.stem_reason}


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
    from dsc.locks import OutputLock

    timings = Timings()
    env = parallel.setup_training()
    if not env.main:
        logging.getLogger().setLevel(logging.WARNING)  # one process reports
    lock = OutputLock(output)  # RUN.lock: a second command writing the same RUN/ is refused (main process)
    try:
        from dsc.backbones import check_backbone

        check_backbone(settings.backbone, pretrained=settings.pretrained and not settings.checkpoint)
        if env.main:
            lock.acquire()
        with timings.stage("load"):
            inputs = open_inputs(data_path, synthetic, negatives)
            settings, sources = with_image_size(settings, sources, inputs.data)
            if negatives and not use_negatives:
                raise ConfigError("--negatives were given but this configuration does not use them",
                                  hint="pass --ood-loss extra-class or outlier-exposure, or drop --negatives")
            run = RunDir(output)
            resuming = (output / "run.json").is_file() and resume
            if env.main:
                resuming = run.prepare(force=force, resume=resume)
            env.barrier()
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
            return _fit(task_factory, command, settings, sources, env, run, data, record, resuming, timings,
                        stop_after, extra_info or {})
    finally:
        lock.release()
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


def _fit(task_factory, command, settings, sources, env, run, data, record, resuming, timings, stop_after,
         extra_info) -> Result:
    with console.status(f"building {settings.backbone} at {settings.image_size} px…"):
        backbone = build_backbone(settings, settings.seed)
    task: Task = task_factory(backbone, data, settings)
    net = task.net.to(env.device)
    if settings.channels_last:  # also on CPU: oneDNN is faster in NHWC for depthwise nets (1.45x mobilenetv3)
        net = net.to(memory_format=torch.channels_last)
    model: nn.Module = net
    if env.distributed:
        model = nn.parallel.DistributedDataParallel(net, device_ids=[env.device.index] if env.device.type == "cuda"
                                                    else None)
    dc = backbone.data_config
    cl = settings.channels_last
    augmentation = resolve_augmentation(settings.augmentation, settings.image_size)
    views = ViewMaker(augmentation, settings.image_size, dc["mean"], dc["std"], channels_last=cl)
    plain = ViewMaker("none", settings.image_size, dc["mean"], dc["std"], channels_last=cl)
    optimizer = make_optimizer(list(net.parameters()), settings)
    amp = amp_dtype(settings.amp, env.device)
    scaler = torch.amp.GradScaler(env.device.type) if amp == torch.float16 else None
    sampler_gen = torch.Generator().manual_seed(settings.seed)
    aug_gen = torch.Generator().manual_seed(settings.seed + 1 + 1000 * env.rank)
    ctx = Context(env, data, views, plain, aug_gen, amp, settings)
    plan = BatchPlan(data.pool.labels[:data.n_pos], len(data.pool) - data.n_pos, settings.batch_size,
                     balanced=settings.balanced, negatives_fraction=settings.negatives_fraction)
    if plan.batch_size < 2 * env.world:
        raise ConfigError(f"--batch-size {settings.batch_size} is too small for {env.world} processes",
                          hint="use at least 2 images per process")
    budget = make_budget(settings, plan, env.world)
    stream = make_stream(budget, plan, sampler_gen)
    total_steps, warmup_steps, unit = budget.total_steps, budget.warmup_steps, budget.unit
    sjson = settings.model_dump(mode="json")
    parts = task.parts()

    start_epoch, step, images_seen, best_val, best_epoch = 0, 0, 0, -math.inf, None
    if resuming and has_checkpoint(run.path, "last"):
        info = load_checkpoint(run.path, "last", parts, optimizer=optimizer)
        start_epoch, step = int(info["epoch"]), int(info["step"])
        images_seen = int(info.get("images_seen", budget.images_for(step)))
        best_val = info.get("best_val") if info.get("best_val") is not None else -math.inf
        best_epoch = info.get("best_epoch")
        rng = info["rng_states"]
        stream.restore(rng, info)
        aug_gen.set_state(rng[f"augment{env.rank}"] if f"augment{env.rank}" in rng else rng["augment0"])
        torch.set_rng_state(rng["torch"])
        if scaler is not None and info.get("scaler"):
            scaler.load_state_dict(info["scaler"])
        if env.main:
            run.truncate_metrics(start_epoch)
            run.update(status="running", resumed_from_epoch=start_epoch)
        log.info("resuming %s from epoch %d", run.path, start_epoch)
    elif env.main:
        run.start(command, sjson, sources, record, backbone_record(settings, backbone),
                  {"classes": data.classes, "data_counts": data.counts,
                   "batch": {"size": settings.batch_size, "negatives_per_batch": plan.n_neg,
                             "steps_per_epoch": budget.steps_per_pass, "processes": env.world},
                   "budget": budget.record(), "augmentation": augmentation, **extra_info})
    env.barrier()
    if env.main:
        log.info("%s: %s (%d real), %s, %d val; %s per pass, %s per batch; budget %s: %s, %s, "
                 "%.2f passes over the positives, in %s", command, count(data.n_pos, "train image"), data.n_real,
                 count(len(data.pool) - data.n_pos, "negative"), len(data.val), count(budget.steps_per_pass, "step"),
                 count(plan.n_neg, "negative"), count(budget.value, budget.kind.rstrip("s")),
                 count(total_steps, "step"), count(budget.images_for(total_steps), "image"),
                 budget.passes_for(total_steps), count(budget.rounds, unit))

    metrics = run.read_metrics() if resuming else []
    status = "complete"
    epoch = start_epoch
    t_start = time.perf_counter()
    from dsc.console import progress

    with progress(unit="img", transient=False) as bar:
        task_id = bar.add_task(command, total=budget.images_for(total_steps) - budget.images_for(step),
                               status="", visible=env.main)
        try:
            for epoch in range(start_epoch + 1, budget.rounds + 1):
                if stop_after is not None and epoch > start_epoch + stop_after:
                    status = "stopped"
                    break
                t0 = time.perf_counter()
                data_time, n_images, loss_sum, n_steps = 0.0, 0, 0.0, 0
                model.train()
                batches = stream.take(budget.round_ends[epoch - 1] - step)
                for size, prepared, wait in _prepared(task, batches, ctx):
                    interrupts.check()  # a Ctrl-C that something swallowed stops the run here
                    lr = lr_at(step, total_steps, warmup_steps, settings.lr)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    loss = _step(task, model, prepared, ctx, optimizer, scaler)
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise DivergedError(
                            f"the loss became {value} at {unit} {epoch}, step {step + 1}; the run stopped and "
                            f"its last good checkpoint is {f'{unit} {epoch - 1}' if epoch > 1 else 'none'}",
                            hint="lower --lr, use --amp off, or check the inputs")
                    data_time += wait
                    loss_sum += value
                    n_steps += 1
                    n_images += size
                    images_seen += size
                    step += 1
                    bar.update(task_id, advance=size, status=_bar_status(unit, epoch, budget.rounds,
                                                                         loss_sum / n_steps))
                train_time = time.perf_counter() - t0
                interrupts.check()
                val = task.validate(ctx)
                loss_epoch = float(env.all_reduce_sum(torch.tensor([loss_sum / max(n_steps, 1)], device=env.device))[0]) / env.world
                # the bar ends the round on its mean loss (as metrics.jsonl has it), not on the last batch's
                bar.update(task_id, status=_bar_status(unit, epoch, budget.rounds, loss_epoch))
                row = {"epoch": epoch, "step": step, "images_seen": images_seen, "loss": round(loss_epoch, 6),
                       "lr": lr,
                       "images_per_s": round(n_images / max(train_time, 1e-9), 2),
                       "data_wait_share": round(data_time / max(train_time, 1e-9), 4),
                       "time_s": round(time.perf_counter() - t0, 3), task.val_key: None if math.isnan(val) else val,
                       **task.epoch_stats()}
                metrics.append(row)
                improved = not math.isnan(val) and val > best_val or (math.isnan(val))
                if improved:
                    best_val, best_epoch = (val if not math.isnan(val) else best_val), epoch
                from dsc.parallel import gather_objects

                aug_states = gather_objects(aug_gen.get_state())  # each process's own, for an exact resume
                if env.main:
                    run.append_metrics(row)
                    stream_tensors, stream_numbers = stream.state()
                    state = {"epoch": epoch, "step": step, "images_seen": images_seen, **stream_numbers,
                             "loss": loss_epoch, task.val_key: row[task.val_key],
                             "val_metric": task.val_key, "best_val": None if best_val == -math.inf else best_val,
                             "best_epoch": best_epoch, "settings_hash": settings_hash(sjson)}
                    if scaler is not None:
                        state["scaler"] = scaler.state_dict()
                    if improved:
                        save_checkpoint(run.path, "best", parts, state)
                    rng = {**stream_tensors, "torch": torch.get_rng_state(),
                           **{f"augment{r}": state for r, state in enumerate(aug_states)}}
                    save_checkpoint(run.path, "last", parts, state, optimizer=optimizer, rng=rng)
                    log.info("%s %d: step %d, loss %.4f, %s %.4f, training %.1f images/s, data wait %.0f%%", unit,
                             epoch, step, loss_epoch, task.val_key, val, row["images_per_s"],
                             100 * row["data_wait_share"])
                env.barrier()
            interrupts.check()  # never mark a run complete after a Ctrl-C
        except DivergedError as exc:
            if env.main:
                run.finish("failed", dict(timings, train=round(time.perf_counter() - t_start, 3)), error=str(exc),
                           **_done(step, images_seen, budget))
            raise
        except BaseException as exc:
            if env.main and (run.path / "run.json").is_file():
                run.update(status="failed" if not isinstance(exc, KeyboardInterrupt) else "interrupted",
                           error=f"{type(exc).__name__}: {exc}", **_done(step, images_seen, budget))
            raise
    timings["train"] = round(time.perf_counter() - t_start, 3)
    if env.main:
        task.end()
    result = Result(run.path, epoch, best_epoch, None if best_val == -math.inf else best_val, metrics,
                    status, dict(timings), env.main, step, images_seen)
    if status == "complete" and type(task).finish is not Task.finish:
        t_eval = time.perf_counter()
        task.finish(ctx, run, result)
        result.timings["evaluate"] = round(time.perf_counter() - t_eval, 3)
    if interrupts.interrupted():  # a Ctrl-C swallowed during the evaluation: the run is not complete
        if env.main:
            run.update(status="interrupted", error="KeyboardInterrupt", **_done(step, images_seen, budget))
        interrupts.check()
    if env.main:
        prev = read_run_info(run.path).get("timings", {}) if resuming else {}
        merged = {k: round(prev.get(k, 0.0) + v, 3) for k, v in result.timings.items()}
        run.finish(status if status != "stopped" else "interrupted", merged, best_epoch=best_epoch,
                   best_val=result.best_val, epochs_done=epoch if status == "complete" else epoch - 1,
                   **_done(step, images_seen, budget))
    return result


def _bar_status(unit: str, epoch: int, rounds: int, loss: float) -> str:
    """The progress bar's status: ``epoch 3/10 loss 1.2345``; the loss is the mean of the round so far."""
    return f"{unit} {epoch}/{rounds} loss {loss:.4f}"


def _done(step: int, images_seen: int, budget: Any) -> dict[str, Any]:
    """The training done so far, for run.json: optimizer steps, images drawn into batches, passes over the
    positives."""
    return {"optimizer_steps": step, "images_seen": images_seen, "passes": budget.passes_for(step)}


def _prepared(task: Task, batches: list[torch.Tensor], ctx: Context) -> Iterator[tuple[int, dict, float]]:
    """(global batch size, prepared local batch, seconds waited for it) per step. With ``--workers`` > 0 the
    next batch is prepared in a background thread while the current one trains (same order, same result)."""
    env = ctx.env
    rows = [env.local_slice(b[: len(b) // env.world * env.world]) for b in batches]
    sizes = [len(b) // env.world * env.world for b in batches]
    if ctx.settings.workers == 0 or len(rows) < 2:
        for size, r in zip(sizes, rows, strict=True):
            t0 = time.perf_counter()
            prepared = task.prepare(r, ctx)
            yield size, prepared, time.perf_counter() - t0
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsc-batch") as pool:
        future = pool.submit(task.prepare, rows[0], ctx)
        for i, size in enumerate(sizes):
            t0 = time.perf_counter()
            prepared = future.result()
            wait = time.perf_counter() - t0
            if i + 1 < len(rows):
                future = pool.submit(task.prepare, rows[i + 1], ctx)
            yield size, prepared, wait


def _step(task: Task, model: nn.Module, prepared: dict, ctx: Context, optimizer: torch.optim.Optimizer,
          scaler: Any) -> torch.Tensor:
    optimizer.zero_grad(set_to_none=True)
    loss = task.compute(model, prepared, ctx)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss
