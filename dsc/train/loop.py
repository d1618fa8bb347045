"""The training loop of ``dsc pretrain`` and ``dsc baseline``: one :class:`TrainLoop` per run.

``dsc.train.common.train`` (the shell: lock, processes, inputs, run folder) builds the loop and calls
:meth:`TrainLoop.run`. The loop owns the run's state (model, optimizer, loss scaler, generators, batch
stream, step, round, best-by-val) and its life: :meth:`~TrainLoop.resume` from the ``last`` checkpoint (or
start ``run.json``), :meth:`~TrainLoop.run_epoch` per evaluation round, :meth:`~TrainLoop.validate_and_select`
and :meth:`~TrainLoop.save` after it, and the end of the run (``run.json``, the task's final evaluation).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dsc import console, interrupts, parallel
from dsc.console import count, progress
from dsc.data.samplers import BatchPlan
from dsc.data.views import ViewMaker
from dsc.errors import ConfigError
from dsc.provenance import Timings
from dsc.settings import TrainSettings
from dsc.train.budget import make_budget, make_stream
from dsc.train.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from dsc.train.common import (
    Context,
    DivergedError,
    Result,
    Task,
    TrainData,
    amp_dtype,
    backbone_record,
    build_backbone,
    lr_at,
    make_optimizer,
    resolve_augmentation,
)
from dsc.train.run_dir import RunDir, read_run_info, settings_hash

log = logging.getLogger(__name__)


@dataclass
class RoundStats:
    """What one evaluation round's training measured (before validation)."""

    t0: float  # when the round started (perf_counter)
    train_time: float
    data_time: float
    n_images: int
    loss_sum: float
    n_steps: int


class TrainLoop:
    """One training run: built from the task, its data and the run folder; :meth:`run` trains the rounds
    not yet done and returns the :class:`Result`. ``stop_after`` ends it after that many rounds of this call
    (used by tests to simulate an interruption)."""

    def __init__(self, task_factory: Callable[..., Task], command: str, settings: TrainSettings,
                 sources: dict[str, str], env: parallel.DistEnv, run: RunDir, data: TrainData,
                 record: dict[str, Any], resuming: bool, timings: Timings, stop_after: int | None = None,
                 extra_info: dict[str, Any] | None = None) -> None:
        self.command, self.settings, self.sources, self.env = command, settings, sources, env
        self.run_dir, self.data, self.record, self.resuming = run, data, record, resuming
        self.timings, self.stop_after, self.extra_info = timings, stop_after, extra_info or {}
        self._build_model(task_factory)
        self._build_training()
        # the run's progress; resume() sets it from the last checkpoint
        self.start_epoch, self.epoch, self.step, self.images_seen = 0, 0, 0, 0
        self.best_val, self.best_epoch = -math.inf, None
        self.lr: float | None = None
        self.metrics: list[dict[str, Any]] = []
        self.status = "complete"

    # ------------------------------------------------------------------------------------------- building
    def _build_model(self, task_factory: Callable[..., Task]) -> None:
        """The backbone (scoped seed), the task, its network on the device (channels_last, DDP)."""
        settings, env = self.settings, self.env
        with console.status(f"building {settings.backbone} at {settings.image_size} px…"):
            self.backbone = build_backbone(settings, settings.seed)
        self.task: Task = task_factory(self.backbone, self.data, settings)
        net = self.task.net.to(env.device)
        if settings.channels_last:  # also on CPU: oneDNN is faster in NHWC for depthwise nets (1.45x mobilenetv3)
            net = net.to(memory_format=torch.channels_last)
        self.model: nn.Module = net
        if env.distributed:
            self.model = nn.parallel.DistributedDataParallel(
                net, device_ids=[env.device.index] if env.device.type == "cuda" else None)
        self.net = net

    def _build_training(self) -> None:
        """Views, optimizer, AMP and loss scaler, the seeded generators, the batch plan, budget and stream."""
        settings, env, data = self.settings, self.env, self.data
        dc, cl = self.backbone.data_config, settings.channels_last
        self.augmentation = resolve_augmentation(settings.augmentation, settings.image_size)
        views = ViewMaker(self.augmentation, settings.image_size, dc["mean"], dc["std"], channels_last=cl)
        plain = ViewMaker("none", settings.image_size, dc["mean"], dc["std"], channels_last=cl)
        self.optimizer = make_optimizer(list(self.net.parameters()), settings)
        amp = amp_dtype(settings.amp, env.device)
        self.scaler = torch.amp.GradScaler(env.device.type) if amp == torch.float16 else None
        sampler_gen = torch.Generator().manual_seed(settings.seed)
        self.aug_gen = torch.Generator().manual_seed(settings.seed + 1 + 1000 * env.rank)
        self.ctx = Context(env, data, views, plain, self.aug_gen, amp, settings)
        self.plan = BatchPlan(data.pool.labels[:data.n_pos], len(data.pool) - data.n_pos, settings.batch_size,
                              balanced=settings.balanced, negatives_fraction=settings.negatives_fraction)
        if self.plan.batch_size < 2 * env.world:
            raise ConfigError(f"--batch-size {settings.batch_size} is too small for {env.world} processes",
                              hint="use at least 2 images per process")
        self.budget = make_budget(settings, self.plan, env.world)
        self.stream = make_stream(self.budget, self.plan, sampler_gen)
        self.sjson = settings.model_dump(mode="json")
        self.parts = self.task.parts()

    # ------------------------------------------------------------------------------------ start or resume
    def begin(self) -> None:
        """Resume from the ``last`` checkpoint, or record the start in ``run.json``; then log the plan."""
        if self.resuming and has_checkpoint(self.run_dir.path, "last"):
            self.resume()
        elif self.env.main:
            self._record_start()
        self.env.barrier()
        if self.env.main:
            self._log_plan()
        self.metrics = self.run_dir.read_metrics() if self.resuming else []
        self.epoch = self.start_epoch

    def resume(self) -> None:
        """Model, optimizer, progress, best-by-val, RNG states, batch stream and loss scale from the ``last``
        checkpoint; ``metrics.jsonl`` is cut back to its round."""
        env, run = self.env, self.run_dir
        info = load_checkpoint(run.path, "last", self.parts, optimizer=self.optimizer)
        self.start_epoch, self.step = int(info["epoch"]), int(info["step"])
        self.images_seen = int(info.get("images_seen", self.budget.images_for(self.step)))
        self.best_val = info.get("best_val") if info.get("best_val") is not None else -math.inf
        self.best_epoch = info.get("best_epoch")
        rng = info["rng_states"]
        self.stream.restore(rng, info)
        self.aug_gen.set_state(rng[f"augment{env.rank}"] if f"augment{env.rank}" in rng else rng["augment0"])
        torch.set_rng_state(rng["torch"])
        if self.scaler is not None and info.get("scaler"):
            self.scaler.load_state_dict(info["scaler"])
        if env.main:
            run.truncate_metrics(self.start_epoch)
            run.update(status="running", resumed_from_epoch=self.start_epoch)
        log.info("resuming %s from epoch %d", run.path, self.start_epoch)

    def _record_start(self) -> None:
        """``run.json`` of a new run: settings, inputs, backbone, classes, batches and budget."""
        settings, data, budget = self.settings, self.data, self.budget
        self.run_dir.start(self.command, self.sjson, self.sources, self.record,
                           backbone_record(settings, self.backbone),
                           {"classes": data.classes, "data_counts": data.counts,
                            "batch": {"size": settings.batch_size, "negatives_per_batch": self.plan.n_neg,
                                      "steps_per_epoch": budget.steps_per_pass, "processes": self.env.world},
                            "budget": budget.record(), "augmentation": self.augmentation, **self.extra_info,
                            **self.task.record()})

    def _log_plan(self) -> None:
        data, budget, total = self.data, self.budget, self.budget.total_steps
        log.info("%s: %s (%d real), %s, %d val; %s per pass, %s per batch; budget %s: %s, %s, "
                 "%.2f passes over the positives, in %s", self.command, count(data.n_pos, "train image"),
                 data.n_real, count(len(data.pool) - data.n_pos, "negative"), len(data.val),
                 count(budget.steps_per_pass, "step"), count(self.plan.n_neg, "negative"),
                 count(budget.value, budget.kind.rstrip("s")), count(total, "step"),
                 count(budget.images_for(total), "image"), budget.passes_for(total), count(budget.rounds, budget.unit))
        mixed = self.task.record()
        if "soft_labels" in mixed:  # Diff-Mix images (docs/training.md, "Mixed images")
            log.info("%s with a soft label (mix_weight): cross-entropy against (1 - w) y_i + w y_j",
                     count(mixed["soft_labels"]["images"], "training image"))
        if "mix_label" in mixed:
            m = mixed["mix_label"]
            log.info("%s labelled by --mix-label %s: %d as their source class, %d as the partner class, %d left "
                     "out of the positives", count(m["mixed"], "mixed image"), m["rule"], m["as_source"],
                     m["as_other"], m["left_out"])

    # ----------------------------------------------------------------------------------------- the rounds
    def run(self) -> Result:
        """Train the rounds not yet done, then end the run (``run.json``, the task's final evaluation)."""
        self.begin()
        budget, env = self.budget, self.env
        t_start = time.perf_counter()
        with progress(unit="img", transient=False) as bar:
            self.bar = bar
            self.bar_id = bar.add_task(self.command, total=budget.images_for(budget.total_steps)
                                       - budget.images_for(self.step), status="", visible=env.main)
            try:
                for epoch in range(self.start_epoch + 1, budget.rounds + 1):
                    self.epoch = epoch
                    if self.stop_after is not None and epoch > self.start_epoch + self.stop_after:
                        self.status = "stopped"
                        break
                    stats = self.run_epoch(epoch)
                    interrupts.check()
                    row, loss, val, improved = self.validate_and_select(epoch, stats)
                    self.save(epoch, row, loss, val, improved)
                    env.barrier()
                interrupts.check()  # never mark a run complete after a Ctrl-C
            except DivergedError as exc:
                if env.main:
                    self.run_dir.finish("failed", dict(self.timings, train=round(time.perf_counter() - t_start, 3)),
                                        error=str(exc), **self._done())
                raise
            except BaseException as exc:
                if env.main and (self.run_dir.path / "run.json").is_file():
                    self.run_dir.update(status="failed" if not isinstance(exc, KeyboardInterrupt) else "interrupted",
                                        error=f"{type(exc).__name__}: {exc}", **self._done())
                raise
        self.timings["train"] = round(time.perf_counter() - t_start, 3)
        return self._end()

    def run_epoch(self, epoch: int) -> RoundStats:
        """Train one evaluation round: the steps up to the round's end, with the lr schedule, the NaN guard
        and the progress bar."""
        budget, unit, settings = self.budget, self.budget.unit, self.settings
        t0 = time.perf_counter()
        data_time, n_images, loss_sum, n_steps = 0.0, 0, 0.0, 0
        self.model.train()
        batches = self.stream.take(budget.round_ends[epoch - 1] - self.step)
        for size, prepared, wait in _prepared(self.task, batches, self.ctx):
            interrupts.check()  # a Ctrl-C that something swallowed stops the run here
            self.lr = lr_at(self.step, budget.total_steps, budget.warmup_steps, settings.lr)
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr
            loss = _step(self.task, self.model, prepared, self.ctx, self.optimizer, self.scaler)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise DivergedError(
                    f"the loss became {value} at {unit} {epoch}, step {self.step + 1}; the run stopped and "
                    f"its last good checkpoint is {f'{unit} {epoch - 1}' if epoch > 1 else 'none'}",
                    hint="lower --lr, use --amp off, or check the inputs")
            data_time += wait
            loss_sum += value
            n_steps += 1
            n_images += size
            self.images_seen += size
            self.step += 1
            self.bar.update(self.bar_id, advance=size, status=_bar_status(unit, epoch, budget.rounds,
                                                                          loss_sum / n_steps))
        return RoundStats(t0, time.perf_counter() - t0, data_time, n_images, loss_sum, n_steps)

    def validate_and_select(self, epoch: int, stats: RoundStats) -> tuple[dict[str, Any], float, float, bool]:
        """Validate, average the round's loss over the processes, append its metrics row and keep the best
        round by validation; returns (row, loss, val, whether it is the new best)."""
        task, env = self.task, self.env
        val = task.validate(self.ctx)
        loss = float(env.all_reduce_sum(torch.tensor([stats.loss_sum / max(stats.n_steps, 1)],
                                                     device=env.device))[0]) / env.world
        # the bar ends the round on its mean loss (as metrics.jsonl has it), not on the last batch's
        self.bar.update(self.bar_id, status=_bar_status(self.budget.unit, epoch, self.budget.rounds, loss))
        self.bar.refresh()   # drawn now: the next round's first batch may come before the bar's next redraw
        row = {"epoch": epoch, "step": self.step, "images_seen": self.images_seen, "loss": round(loss, 6),
               "lr": self.lr,
               "images_per_s": round(stats.n_images / max(stats.train_time, 1e-9), 2),
               "data_wait_share": round(stats.data_time / max(stats.train_time, 1e-9), 4),
               "time_s": round(time.perf_counter() - stats.t0, 3), task.val_key: None if math.isnan(val) else val,
               **task.epoch_stats()}
        self.metrics.append(row)
        improved = not math.isnan(val) and val > self.best_val or (math.isnan(val))
        if improved:
            self.best_val, self.best_epoch = (val if not math.isnan(val) else self.best_val), epoch
        return row, loss, val, improved

    def save(self, epoch: int, row: dict[str, Any], loss: float, val: float, improved: bool) -> None:
        """The round's metrics row, checkpoint ``best`` when it improved, ``last`` with the optimizer, the
        RNG states of every process and the batch stream's position (for an exact resume); one log line."""
        env, task = self.env, self.task
        aug_states = parallel.gather_objects(self.aug_gen.get_state())  # each process's own, for an exact resume
        if not env.main:
            return
        self.run_dir.append_metrics(row)
        stream_tensors, stream_numbers = self.stream.state()
        state = {"epoch": epoch, "step": self.step, "images_seen": self.images_seen, **stream_numbers,
                 "loss": loss, task.val_key: row[task.val_key],
                 "val_metric": task.val_key, "best_val": None if self.best_val == -math.inf else self.best_val,
                 "best_epoch": self.best_epoch, "settings_hash": settings_hash(self.sjson)}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if improved:
            save_checkpoint(self.run_dir.path, "best", self.parts, state)
        rng = {**stream_tensors, "torch": torch.get_rng_state(),
               **{f"augment{r}": s for r, s in enumerate(aug_states)}}
        save_checkpoint(self.run_dir.path, "last", self.parts, state, optimizer=self.optimizer, rng=rng)
        log.info("%s %d: step %d, loss %.4f, %s %.4f, training %.1f images/s, data wait %.0f%%", self.budget.unit,
                 epoch, self.step, loss, task.val_key, val, row["images_per_s"], 100 * row["data_wait_share"])

    # -------------------------------------------------------------------------------------------- the end
    def _end(self) -> Result:
        """The task's end and final evaluation (complete runs), then ``run.json``'s status and totals."""
        env, run, task, status, epoch = self.env, self.run_dir, self.task, self.status, self.epoch
        if env.main:
            task.end()
        best_val = None if self.best_val == -math.inf else self.best_val
        result = Result(run.path, epoch, self.best_epoch, best_val, self.metrics, status, dict(self.timings),
                        env.main, self.step, self.images_seen)
        if status == "complete" and type(task).finish is not Task.finish:
            t_eval = time.perf_counter()
            task.finish(self.ctx, run, result)
            result.timings["evaluate"] = round(time.perf_counter() - t_eval, 3)
        if interrupts.interrupted():  # a Ctrl-C swallowed during the evaluation: the run is not complete
            if env.main:
                run.update(status="interrupted", error="KeyboardInterrupt", **self._done())
            interrupts.check()
        if env.main:
            prev = read_run_info(run.path).get("timings", {}) if self.resuming else {}
            merged = {k: round(prev.get(k, 0.0) + v, 3) for k, v in result.timings.items()}
            run.finish(status if status != "stopped" else "interrupted", merged, best_epoch=self.best_epoch,
                       best_val=result.best_val, epochs_done=epoch if status == "complete" else epoch - 1,
                       **self._done())
        return result

    def _done(self) -> dict[str, Any]:
        """The training done so far, for run.json: optimizer steps, images drawn into batches, passes over the
        positives."""
        return {"optimizer_steps": self.step, "images_seen": self.images_seen,
                "passes": self.budget.passes_for(self.step)}


def _bar_status(unit: str, epoch: int, rounds: int, loss: float) -> str:
    """The progress bar's status: ``epoch 3/10 loss 1.2345``; the loss is the mean of the round so far."""
    return f"{unit} {epoch}/{rounds} loss {loss:.4f}"


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
    """One optimizer step on a prepared batch (fp16: through the loss scaler); returns the loss."""
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
