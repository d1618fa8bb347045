"""The training budget: how many optimizer steps a run takes, and when it validates (docs/training.md).

A run's length is set in one of three units (``TrainSettings``): ``epochs`` passes over the positives (the
default), ``steps`` optimizer steps, or ``images`` training images drawn into batches (the run takes the
steps it needs to reach that many). Whatever the unit, the run is cut into ``epochs`` evaluation *rounds*
of equal length (rounds end at steps ``k * total // epochs``): each round ends with validation, the
checkpoints and one ``metrics.jsonl`` row. With an epochs budget a round is exactly one pass, as before;
with a steps or images budget every arm of a study gets the same number of validations (and chances to be
selected) however many images it has. Warm-up lasts ``warmup_epochs`` rounds; the cosine runs to the
last step.

Batches: with an epochs budget, :class:`BatchStream` hands out the passes of :meth:`BatchPlan.epoch` (whose
last batch of a pass may be smaller). With a steps or images budget, :class:`FullBatchStream` cuts an
endless stream of passes into batches that are all full, so every step of every arm holds the same number
of images and equal steps mean equal images. Both streams save and restore their position, so a resume
stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from dsc.data.samplers import BatchPlan
from dsc.errors import ConfigError


def pass_sizes(plan: BatchPlan, world: int = 1) -> list[int]:
    """Global images of each batch of one pass, as :meth:`BatchPlan.epoch` yields them (a last batch
    with fewer than 2 positives dropped), trimmed to a multiple of the process count."""
    n_pos, per = plan.n_pos, plan.n_pos_batch
    chunks = [per] * (n_pos // per) + ([n_pos % per] if n_pos % per else [])
    if len(chunks) > 1 and chunks[-1] < 2:
        chunks.pop()
    return [(c + plan.n_neg) // world * world for c in chunks]


def full_batch(plan: BatchPlan, world: int = 1) -> tuple[int, int]:
    """(positives, global images) of each batch of a :class:`FullBatchStream`: never more positives than
    there are, so a batch holds no image twice from one pass."""
    pos = min(plan.n_pos_batch, plan.n_pos)
    return pos, (pos + plan.n_neg) // world * world


@dataclass(frozen=True)
class Budget:
    """The planned length of a run and its evaluation rounds."""

    kind: str                     # "epochs" | "steps" | "images"
    value: int                    # the epochs, steps or images asked for
    steps_per_pass: int           # batches of one pass as BatchPlan.epoch cuts it (what an epoch is)
    sizes: tuple[int, ...]        # global images of each step, repeating: one pass, or one full batch
    positives_per_pass: float     # positives drawn per repetition of ``sizes`` / the number of positives
    total_steps: int
    round_ends: tuple[int, ...]   # the step count at the end of each round
    warmup_steps: int

    @property
    def full_batches(self) -> bool:
        """Steps and images budgets use :class:`FullBatchStream`."""
        return self.kind != "epochs"

    @property
    def rounds(self) -> int:
        return len(self.round_ends)

    @property
    def unit(self) -> str:
        """What a round is called in messages: "epoch" (one pass) or "round"."""
        return "epoch" if self.kind == "epochs" else "round"

    def images_for(self, steps: int) -> int:
        """Images drawn into the first ``steps`` batches."""
        full, rest = divmod(steps, len(self.sizes))
        return full * sum(self.sizes) + sum(self.sizes[:rest])

    def passes_for(self, steps: int) -> float:
        """Passes over the positives made in ``steps`` steps."""
        return round(steps / len(self.sizes) * self.positives_per_pass, 4)

    def record(self) -> dict[str, Any]:
        """The plan, for run.json."""
        return {"kind": self.kind, "value": self.value, "total_steps": self.total_steps,
                "planned_images": self.images_for(self.total_steps), "rounds": self.rounds,
                "steps_per_epoch": self.steps_per_pass, "warmup_steps": self.warmup_steps,
                "full_batches": self.full_batches, "passes": self.passes_for(self.total_steps)}


def steps_for_images(sizes: list[int] | tuple[int, ...], images: int) -> int:
    """The fewest steps whose batches hold at least ``images`` images."""
    per_pass = sum(sizes)
    if per_pass <= 0:
        raise ConfigError("batches hold no images", hint="raise --batch-size")
    full, rest = divmod(images, per_pass)
    steps, seen = full * len(sizes), 0
    for size in sizes:
        if seen >= rest:
            break
        seen += size
        steps += 1
    return steps


def make_budget(settings: Any, plan: BatchPlan, world: int = 1) -> Budget:
    """The budget of a run with these settings (a TrainSettings) and this batch plan."""
    per_pass = pass_sizes(plan, world)
    rounds = settings.epochs
    if settings.budget == "epochs":
        sizes, drawn = tuple(per_pass), 1.0
    else:
        pos, size = full_batch(plan, world)
        sizes, drawn = (size,), pos / plan.n_pos
    if settings.steps is not None:
        kind, value, total = "steps", settings.steps, settings.steps
    elif settings.images is not None:
        kind, value, total = "images", settings.images, steps_for_images(sizes, settings.images)
    else:
        kind, value, total = "epochs", rounds, rounds * len(sizes)
    if total < rounds:
        raise ConfigError(f"a budget of {value} {kind} is {total} optimizer steps, fewer than the {rounds} "
                          "evaluation rounds of --epochs",
                          hint="with --steps or --images, --epochs counts evaluation rounds: lower it, or raise "
                               "the budget")
    ends = tuple(k * total // rounds for k in range(1, rounds + 1))
    warmup = settings.warmup_epochs * total // rounds
    return Budget(kind, value, len(per_pass), sizes, drawn, total, ends, warmup)


class BatchStream:
    """The batches of consecutive passes over the positives (drawn with ``gen`` from ``plan``), handed out
    in any number; its state (the generator before the current pass and the position in it) restores
    the exact same sequence."""

    def __init__(self, plan: BatchPlan, gen: torch.Generator) -> None:
        self.plan, self.gen = plan, gen
        self.pass_state = gen.get_state()
        self.batches: list[torch.Tensor] = []
        self.offset = 0

    def take(self, n: int) -> list[torch.Tensor]:
        """The next ``n`` batches (drawing new passes as needed)."""
        out: list[torch.Tensor] = []
        while len(out) < n:
            if self.offset >= len(self.batches):
                self.pass_state = self.gen.get_state()
                self.batches, self.offset = self.plan.epoch(self.gen), 0
            k = min(n - len(out), len(self.batches) - self.offset)
            out += self.batches[self.offset:self.offset + k]
            self.offset += k
        return out

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        """(tensors, numbers) to save: the generator state and the batches already taken from the pass it
        draws. At the end of a pass that is the state after the pass and 0, what checkpoints always held."""
        if self.offset < len(self.batches):
            return {"sampler": self.pass_state}, {"pass_offset": self.offset}
        return {"sampler": self.gen.get_state()}, {"pass_offset": 0}

    def restore(self, tensors: dict[str, torch.Tensor], numbers: dict[str, Any]) -> None:
        """Continue from a saved :meth:`state` (checkpoints without ``pass_offset`` ended a pass)."""
        self.gen.set_state(tensors["sampler"])
        self.batches, self.offset = [], 0
        offset = int(numbers.get("pass_offset") or 0)
        if offset:
            self.pass_state = self.gen.get_state()
            self.batches, self.offset = self.plan.epoch(self.gen), offset


class FullBatchStream:
    """Full batches from endless passes: the positives of consecutive passes (permutations, or class-balanced
    draws with ``balanced``) and the negatives of consecutive permutations are queued and cut into batches of
    :func:`full_batch` positives plus ``n_neg`` negatives, all drawn with ``gen``. A batch that spans two
    passes may hold an image twice; no batch is smaller than the others."""

    def __init__(self, plan: BatchPlan, gen: torch.Generator) -> None:
        self.plan, self.gen = plan, gen
        self.n_pos = full_batch(plan)[0]
        self.pos = torch.zeros(0, dtype=torch.int64)
        self.neg = torch.zeros(0, dtype=torch.int64)

    def _next(self) -> torch.Tensor:
        plan = self.plan
        while len(self.pos) < self.n_pos:
            self.pos = torch.cat([self.pos, plan._positives(self.gen)])   # one pass, as BatchPlan.epoch draws
        rows, self.pos = self.pos[:self.n_pos], self.pos[self.n_pos:]
        if plan.n_neg:
            while len(self.neg) < plan.n_neg:
                self.neg = torch.cat([self.neg, torch.randperm(plan.n_neg_pool, generator=self.gen) + plan.n_pos])
            rows, self.neg = torch.cat([rows, self.neg[:plan.n_neg]]), self.neg[plan.n_neg:]
        return rows

    def take(self, n: int) -> list[torch.Tensor]:
        """The next ``n`` batches."""
        return [self._next() for _ in range(n)]

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        """(tensors, numbers) to save: the generator state and the queued positives and negatives."""
        return {"sampler": self.gen.get_state(), "queue_pos": self.pos.clone(), "queue_neg": self.neg.clone()}, {}

    def restore(self, tensors: dict[str, torch.Tensor], numbers: dict[str, Any]) -> None:
        """Continue from a saved :meth:`state`."""
        self.gen.set_state(tensors["sampler"])
        self.pos = tensors.get("queue_pos", torch.zeros(0, dtype=torch.int64)).to(torch.int64)
        self.neg = tensors.get("queue_neg", torch.zeros(0, dtype=torch.int64)).to(torch.int64)


def make_stream(budget: Budget, plan: BatchPlan, gen: torch.Generator) -> BatchStream | FullBatchStream:
    """The batch stream a budget uses."""
    return FullBatchStream(plan, gen) if budget.full_batches else BatchStream(plan, gen)
