"""The training budget: how many optimizer steps a run takes, and when it validates (docs/training.md).

A run's length is set in one of three units (``TrainSettings``): ``epochs`` passes over the positives (the
default), ``steps`` optimizer steps, or ``images`` training images drawn into batches (the run takes the
steps it needs to reach that many). Whatever the unit, the run is cut into ``epochs`` evaluation *rounds*
of equal length (rounds end at steps ``k * total // epochs``): each round ends with validation, the
checkpoints and one ``metrics.jsonl`` row. With an epochs budget a round is exactly one pass, as before;
with a steps or images budget every arm of a study gets the same number of validations (and chances to be
selected) however many images it has. Warm-up lasts ``warmup_epochs`` rounds; the cosine runs to the
last step.

:class:`BatchStream` hands out the batches of consecutive passes, cut at any step, and can be saved and
restored in the middle of a pass, so a resume stays exact.
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


@dataclass(frozen=True)
class Budget:
    """The planned length of a run and its evaluation rounds."""

    kind: str                     # "epochs" | "steps" | "images"
    value: int                    # the epochs, steps or images asked for
    sizes: tuple[int, ...]        # global images per batch of one pass over the positives
    total_steps: int
    round_ends: tuple[int, ...]   # the step count at the end of each round
    warmup_steps: int

    @property
    def steps_per_pass(self) -> int:
        return len(self.sizes)

    @property
    def rounds(self) -> int:
        return len(self.round_ends)

    @property
    def unit(self) -> str:
        """What a round is called in messages: "epoch" (one pass) or "round"."""
        return "epoch" if self.kind == "epochs" else "round"

    def images_for(self, steps: int) -> int:
        """Images drawn into the first ``steps`` batches."""
        full, rest = divmod(steps, self.steps_per_pass)
        return full * sum(self.sizes) + sum(self.sizes[:rest])

    def record(self) -> dict[str, Any]:
        """The plan, for run.json."""
        return {"kind": self.kind, "value": self.value, "total_steps": self.total_steps,
                "planned_images": self.images_for(self.total_steps), "rounds": self.rounds,
                "steps_per_epoch": self.steps_per_pass, "warmup_steps": self.warmup_steps,
                "passes": round(self.total_steps / self.steps_per_pass, 4)}


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
    sizes = tuple(pass_sizes(plan, world))
    rounds = settings.epochs
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
    return Budget(kind, value, sizes, total, ends, warmup)


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

    def state(self) -> tuple[torch.Tensor, int]:
        """(generator state, batches already taken from the pass it draws). At the end of a pass that is
        the state after the pass and 0, the same state an epochs budget always saved."""
        if self.offset < len(self.batches):
            return self.pass_state, self.offset
        return self.gen.get_state(), 0

    def restore(self, gen_state: torch.Tensor, offset: int = 0) -> None:
        """Continue from a saved :meth:`state`."""
        self.gen.set_state(gen_state)
        self.batches, self.offset = [], 0
        if offset:
            self.pass_state = self.gen.get_state()
            self.batches, self.offset = self.plan.epoch(self.gen), offset
