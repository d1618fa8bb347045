"""The one seeded few-shot draw: ``k`` images per class of a split, the same rows wherever they are asked for.

`dsc invert --examples-per-class K`, `dsc augment --examples-per-class K` and `dsc pretrain`/`baseline`
`--examples-per-class K` (and the probe of such a run) all draw with this function, so with the same K and
seed the tokens are learned on, the variants are made from, and the encoder and classifier are trained on
the same real images (docs/training.md#few-shot). The draws are nested: with one seed, the images of a
smaller K are among those of a larger one, so a store made from a K = 16 draw has variants of every image a
K = 1, 2, 4 or 8 run of that seed trains on. (dsc before this rule drew each K independently.)
"""

from __future__ import annotations

import numpy as np

#: Mixed into every draw's seed so a few-shot draw never shares a stream with another use of the seed.
SALT = 0x5E1EC7


def class_rows(labels: np.ndarray, split: np.ndarray, label: int, k: int | None, seed: int,
               split_name: str = "train") -> np.ndarray:
    """Rows of class ``label`` in ``split_name``; a seeded subset of ``k`` of them (sorted) when there are more."""
    rows = np.flatnonzero((labels == label) & (split == split_name))
    if k is not None and rows.size > k:
        order = np.random.default_rng([seed, label, SALT]).permutation(rows)
        rows = np.sort(order[:k])   # nested: with one seed, the k drawn images are among any larger draw's
    return rows


def draw(labels: np.ndarray, split: np.ndarray, class_ids: list[int], k: int | None, seed: int,
         split_name: str = "train") -> np.ndarray:
    """The rows of every class in ``class_ids`` (:func:`class_rows`), sorted."""
    parts = [class_rows(labels, split, c, k, seed, split_name) for c in class_ids]
    return np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)


def record(settings: dict) -> dict | None:
    """What a run's metrics record of its few-shot draw (``{"examples_per_class", "seed"}``), from its recorded
    training settings; None for a run on the whole train split."""
    k = settings.get("examples_per_class")
    if k is None:
        return None
    seed = settings.get("few_shot_seed")
    return {"examples_per_class": int(k), "seed": int(settings.get("seed", 0) if seed is None else seed)}
