"""The training budget of a study's arms: by default every arm of a method trains the optimizer steps the
"none" arm takes in its epochs (docs/training.md#training-budget)."""

from __future__ import annotations

from typing import Any

import numpy as np

from dsc.console import count, plural
from dsc.errors import InputError
from dsc.study.spec import StudySpec


def equal_budget(spec: StudySpec, settings: Any) -> tuple[dict[str, int], str]:
    """The budget every arm of one method trains with: ``{"steps": N}`` or ``{"images": N}`` derived from
    the "none" arm (real train images only, no negatives) in its epochs, or ``{}`` when the study file or
    ``[study] budget = "epochs"`` decides; and a sentence saying which. ``settings``: the method's settings
    as the study file resolves them (before a budget is set)."""
    batch = settings.batch_size
    if settings.budget != "epochs":
        amount = settings.steps if settings.budget == "steps" else settings.images
        return {}, (f"every arm trains {count(amount, settings.budget.rstrip('s'))} (batch {batch}), as the study "
                    "file sets")
    if spec.budget == "epochs":
        return {}, (f"every arm trains {count(settings.epochs, 'epoch')} (batch {batch}): arms with more images take "
                    "more optimizer steps ([study] budget = \"epochs\")")
    from dsc.data.samplers import BatchPlan
    from dsc.data.stores import real_rows
    from dsc.store import open_store
    from dsc.train.budget import pass_sizes

    store = open_store(spec.data, kind="data")
    rows = real_rows(store, "train")
    if settings.examples_per_class is not None:  # a few-shot cell: at most k images of each class
        n_train = int(np.minimum(np.bincount(store.labels[rows], minlength=len(store.classes)),
                                 settings.examples_per_class).sum())
    else:
        n_train = len(rows)
    if n_train == 0:
        raise InputError(f"study data {spec.data} has no train rows", hint="make it with `dsc subset` (train split)")
    import torch

    sizes = pass_sizes(BatchPlan(torch.zeros(n_train, dtype=torch.int64), 0, batch))
    if spec.budget == "steps":
        amount = settings.epochs * len(sizes)
        how = f"{count(settings.epochs, 'epoch')} x {count(len(sizes), 'step')}"
    else:
        amount = settings.epochs * sum(sizes)
        how = f"{count(settings.epochs, 'epoch')} x {count(sum(sizes), 'image')}"
    what = "optimizer " + plural(amount, spec.budget.rstrip("s")) if spec.budget == "steps" else plural(amount, "image")
    return {spec.budget: amount}, (f"every arm trains {amount} {what} of batch {batch}, the 'none' arm's {how} on "
                                   f"{count(n_train, 'train image')}; evaluated in {count(settings.epochs, 'round')}")


def budget_text(settings: Any) -> str:
    """"240 steps", "9600 images" or "8 epochs"."""
    kind = settings.budget
    return f"{getattr(settings, kind)} {kind}"
