"""Stratified, group-respecting splits (dsc.subset.splits)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dsc.errors import PluginError
from dsc.subset import group_split, leaking_groups, normalise_split


def _data(seed: int = 0, n: int = 600):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, n).tolist()
    # groups of 1-6 samples; some groups mix classes (crops of one photo)
    groups = [f"g{int(i // rng.integers(1, 7))}-{labels[i] if i % 3 else 'x'}" for i in range(n)]
    return labels, groups


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_groups_never_span_splits_and_classes_follow_fractions(seed):
    labels, groups = _data(seed)
    splits = group_split(labels, groups, (0.7, 0.15, 0.15), seed)
    assert not leaking_groups(groups, splits)
    for c in range(5):
        got = Counter(s for s, lab in zip(splits, labels, strict=True) if lab == c)
        total = sum(got.values())
        assert abs(got["train"] / total - 0.7) < 0.08
        assert got["val"] > 0 and got["test"] > 0


def test_deterministic_by_seed():
    labels, groups = _data()
    a = group_split(labels, groups, (0.6, 0.2, 0.2), 7)
    assert a == group_split(labels, groups, (0.6, 0.2, 0.2), 7)
    assert a != group_split(labels, groups, (0.6, 0.2, 0.2), 8)


def test_zero_fraction_and_tiny_classes():
    splits = group_split([0, 0, 0, 1], ["a", "b", "c", "d"], (0.8, 0.2, 0.0), 0)
    assert "test" not in splits and splits[3] == "train"  # a one-image class stays in train


def test_normalise_split():
    assert [normalise_split(s) for s in ("train", "valid", "Validation", "test", None)] == \
        ["train", "val", "val", "test", None]
    with pytest.raises(PluginError, match="holdout"):
        normalise_split("holdout")


def test_leaking_groups_detects_spans():
    assert leaking_groups(["a", "a", "b"], ["train", "test", "val"]) == ["a"]
