"""Train/val/test splits: stratified by class, never splitting a group.

A group is a set of samples of one physical object or one source photo (several crops of one car photo,
several camera views of one part). If a group spanned two splits, the test set would contain near
copies of training images. ``group_split`` assigns whole groups, largest first, each to the split whose
per-class quota is most unfilled, so every class ends close to the asked fractions.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from dsc.errors import PluginError
from dsc.store.schema import SPLITS

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
