"""Diff-Mix's partner classes by confusion (``--pairs confusion --filter RUN``).

The partner class j of a class-i source is drawn with probability proportional to how much RUN's real-data
classifier confuses i with j on the VALIDATION split of DATA.h5 (never test: the test split stays unseen by
every choice dsc makes): ``C[i, j]`` = the mean probability the classifier gives class j over the val images of
class i, among the chosen classes, the diagonal left out. Soft probabilities rather than arg-max counts, so a
class pair the classifier never confuses outright still gets its share.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from dsc.errors import InputError

#: Record the matrix itself in the store's provenance up to this many classes (else its hash only).
RECORD_MAX_CLASSES = 40


def val_confusion(predict: Any, store: Any, class_ids: list[int], *, chunk: int = 64) -> np.ndarray:
    """``C[i, j]`` over all of DATA.h5's classes (rows and columns of unchosen classes stay 0): mean probability
    ``predict`` (uint8 images -> probabilities [N, classes]) gives j on the val images of chosen class i."""
    n = len(store.classes)
    labels, split = store.labels, store.split
    missing = [store.classes[c] for c in class_ids if not ((split == "val") & (labels == c)).any()]
    if missing:
        raise InputError(f"--pairs confusion needs validation images of every chosen class; {store.path} has none "
                         f"of {', '.join(missing)}", hint="use --pairs uniform, or make DATA.h5 with a val split")
    out = np.zeros((n, n), dtype=np.float64)
    chosen = np.asarray(class_ids, dtype=np.int64)
    for c in class_ids:
        rows = np.flatnonzero((split == "val") & (labels == c))
        probs = np.concatenate([np.asarray(predict(store.images(rows[a:a + chunk])), dtype=np.float64)
                                for a in range(0, len(rows), chunk)])
        out[c, chosen] = probs[:, chosen].mean(axis=0)
    np.fill_diagonal(out, 0.0)
    return out


def pair_probabilities(confusion: np.ndarray, class_ids: list[int]) -> np.ndarray:
    """Row-normalised off-diagonal confusion among ``class_ids`` (a class the classifier never confuses with
    another chosen class draws its partner uniformly)."""
    p = np.zeros_like(confusion, dtype=np.float64)
    chosen = np.asarray(class_ids, dtype=np.int64)
    for c in class_ids:
        others = chosen[chosen != c]
        row = np.clip(confusion[c, others], 0.0, None)
        p[c, others] = row / row.sum() if row.sum() > 0 else 1.0 / len(others)
    return p


def record(p: np.ndarray, class_ids: list[int], run: str) -> dict[str, Any]:
    """What the store records of the pair draw: the rule, the run, the split and the matrix (or its hash)."""
    sub = p[np.ix_(class_ids, class_ids)]
    out: dict[str, Any] = {"rule": "confusion", "run": run, "split": "val",
                           "sha256": hashlib.sha256(np.ascontiguousarray(sub).tobytes()).hexdigest()}
    if len(class_ids) <= RECORD_MAX_CLASSES:
        out["probabilities"] = np.round(sub, 6).tolist()
    return out
