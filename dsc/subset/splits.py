"""Train/val/test splits: stratified by class, never splitting a group.

A group is a set of samples of one physical object or one source photo (several crops of one car photo,
several camera views of one part). If a group spanned two splits, the test set would contain near
copies of training images. ``group_split`` assigns whole groups, largest first, each to the split whose
per-class quota is most unfilled, so every class ends close to the asked fractions.

`assign_splits` applies this to a subset's plan: the dataset's own splits where it has them (a missing val
split carved from its train split, by group), `group_split` for the rest; it counts the groups that leak
across the dataset's own splits and warns about images without a group.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from dsc.console import count
from dsc.errors import InputError, PluginError
from dsc.settings import SubsetSettings
from dsc.store.schema import SPLITS

if TYPE_CHECKING:
    from dsc.subset.plan import Plan, Row

log = logging.getLogger(__name__)

ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
           "dev": "val", "test": "test", "testing": "test"}



def normalise_split(value: str | None, dataset: str = "dataset") -> str | None:
    """"train" / "val" / "test" (accepting "valid", "validation", ...), None for no split."""
    if value is None:
        return None
    key = str(value).strip().lower()
    if key not in ALIASES:
        raise PluginError(f"dataset plugin {dataset!r} gave split {value!r}",
                          hint="a record's split must be train, val or test (or None)")
    return ALIASES[key]

def group_split(labels: Sequence[int], groups: Sequence[str], fractions: Sequence[float],
                seed: int | np.random.SeedSequence) -> list[str]:
    """The split of every sample; all samples of a group share one split.

    ``fractions`` gives train, val, test shares (summing to 1). Groups are visited largest first (ties in
    a seeded random order) and each goes to the split with the largest relative deficit over the classes
    it contains, weighted by how many of its samples belong to each class.
    """
    if len(labels) != len(groups):
        raise ValueError("labels and groups differ in length")
    rng = np.random.default_rng(seed)
    members: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    keys = sorted(members)
    order = rng.permutation(len(keys))
    keys = [keys[i] for i in order]
    keys.sort(key=lambda g: -len(members[g]))  # stable: equal sizes keep the random order
    totals = Counter(labels)
    filled = [Counter() for _ in SPLITS]
    out = [""] * len(labels)
    active = [s for s, f in enumerate(fractions) if f > 0]
    for g in keys:
        composition = Counter(labels[i] for i in members[g])
        best, best_score = active[0], -np.inf
        for s in active:
            score = sum(n * (fractions[s] * totals[c] - filled[s][c]) / totals[c] for c, n in composition.items())
            if score > best_score + 1e-12:
                best, best_score = s, score
        filled[best].update(composition)
        for i in members[g]:
            out[i] = SPLITS[best]
    return out

def leaking_groups(groups: Sequence[str], splits: Sequence[str]) -> list[str]:
    """Groups whose samples lie in more than one split."""
    seen: dict[str, set[str]] = defaultdict(set)
    for g, s in zip(groups, splits, strict=True):
        seen[g].add(s)
    return sorted(g for g, s in seen.items() if len(s) > 1)


def assign_splits(plan: Plan, settings: SubsetSettings, seq: np.random.SeedSequence) -> None:
    """The split of every training-class row (held-out rows are test); the plan records how."""
    train_rows = [r for r in plan.rows if r.label >= 0]
    given = [r for r in train_rows if r.split]
    plan.dataset_splits = bool(given)
    todo = [r for r in train_rows if not r.split]
    carve = not todo and bool(given) and not any(r.split == "val" for r in given) and settings.split[1] > 0
    _check_groups(plan, todo or ([r for r in given if r.split == "train"] if carve else []), settings)
    if todo:
        if given:
            log.warning("%d of %d records have no split from the dataset; splitting those by group",
                        len(todo), len(train_rows))
        for r, s in zip(todo, group_split([r.label for r in todo], [r.group for r in todo], settings.split, seq),
                        strict=True):
            r.split = s
    elif carve:
        # the dataset has no validation split: carve one out of its train split, by group
        pool = [r for r in given if r.split == "train"]
        f_train, f_val = settings.split[0], settings.split[1]
        fractions = (f_train / (f_train + f_val), f_val / (f_train + f_val), 0.0)
        for r, s in zip(pool, group_split([r.label for r in pool], [r.group for r in pool], fractions, seq),
                        strict=True):
            r.split = s
        plan.carved_val = True
        log.info("dataset has no val split: took %d train images (by group) for val",
                 sum(r.split == "val" for r in pool))
    leaks = leaking_groups([r.group for r in train_rows], [r.split for r in train_rows])
    plan.group_leaks = len(leaks)
    trained = {r.group for r in train_rows if r.split in ("train", "val")}
    shared = {r.group for r in plan.rows if r.label < 0} & trained
    plan.holdout_shared_groups = len(shared)
    if shared:
        log.info("%d groups have held-out-class images (test) and training-class images in train/val, e.g. %s "
                 "(other objects of one source photo)", len(shared), sorted(shared)[0])
    if leaks:
        log.warning("%d groups span several of the dataset's own splits (e.g. %s): near-duplicates may leak "
                    "from train into val/test", len(leaks), leaks[0])


def _check_groups(plan: Plan, split_by_dsc: list[Row], settings: SubsetSettings) -> None:
    """Images without a group are each their own group: dsc cannot keep crops or views of one photo or
    object together. Warn once when dsc splits such images; with ``--require-groups`` refuse instead."""
    train_rows = [r for r in plan.rows if r.label >= 0]
    plan.trained = len(train_rows)
    plan.ungrouped = sum(r.record.group is None for r in train_rows)
    missing = sum(r.record.group is None for r in split_by_dsc)
    if not missing:
        return
    n = len(split_by_dsc)
    what = f"all {n}" if missing == n else f"{missing} of {n}"
    how = plan.groups_hint or "a dataset plugin gives groups in Record.group (docs/plugins.md)"
    if settings.require_groups:
        raise InputError(f"--require-groups: {what} images dsc splits have no group",
                         hint=f"give groups: {how}; or drop --require-groups to split those images one by one")
    log.warning("%s images dsc splits have no group, so each is its own group: several crops or views of one "
                "photo or object can land in train and test. Give groups: %s (or pass --require-groups to "
                "refuse instead)", what[0].upper() + what[1:], how)

def grouping_text(ungrouped: int, total: int) -> str:
    """The summary's word on groups: grouped, ungrouped (each image its own group) or partly grouped."""
    if total and ungrouped == total:
        return "ungrouped: each image is its own group"
    if ungrouped:
        return (f"partly grouped: {ungrouped} of {count(total, 'image')} {'has' if ungrouped == 1 else 'have'} "
                "no group (each is its own group)")
    return "grouped"
