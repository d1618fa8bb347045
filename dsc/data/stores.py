"""Training data read from dsc stores into memory once: uint8 NHWC images resized to the training size.

Every row carries its label, an explicit ``is_ood`` flag (never derived from the label), its source class
(``source_label``) and the DATA.h5 row it came from (``source_index``; a real image's own row). OOD rows
have label -1. Held-out classes (label < 0 or a true ``holdout`` column) are never training data.

Mixed rows (``diff-mix``): a synthetic store may carry ``mix_weight`` w, the weight of class ``other_label``
j in the row's soft label ``(1 - w) * onehot(source_label) + w * onehot(j)`` (``labels`` is the dominant
class). A store without the column, a real image and an OOD row have w = 0: a hard label, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dsc.errors import InputError, ResourceError
from dsc.store import Overlap, Store, check_same_source, open_store
from dsc.store.overlap import check_pairs
from dsc.store.overlap import summary as overlap_summary

log = logging.getLogger(__name__)

#: Refuse to hold more than this many bytes of images in memory (streaming is not implemented).
MAX_IN_MEMORY = 24 * 2**30


@dataclass
class ImageSet:
    """Images and per-row facts, all tensors of the same length N."""

    images: torch.Tensor  # uint8 [N, S, S, 3]
    labels: torch.Tensor  # int64 [N], -1 for OOD rows
    is_ood: torch.Tensor  # bool [N]
    source_label: torch.Tensor  # int64 [N]
    source_index: torch.Tensor  # int64 [N], row in DATA.h5
    origin: str = "real"
    other_label: torch.Tensor | None = None  # int64 [N], class j of a mixed row (default: labels)
    mix_weight: torch.Tensor | None = None  # float32 [N], weight w of other_label (default: 0, a hard label)

    def __post_init__(self) -> None:
        if self.other_label is None:
            self.other_label = self.labels.clone()
        if self.mix_weight is None:
            self.mix_weight = torch.zeros(self.labels.shape[0], dtype=torch.float32)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def mixed(self) -> torch.Tensor:
        """bool [N]: rows with a soft label (w > 0)."""
        return self.mix_weight > 0

    @staticmethod
    def empty(size: int, origin: str) -> ImageSet:
        z = torch.zeros(0, dtype=torch.int64)
        return ImageSet(torch.zeros(0, size, size, 3, dtype=torch.uint8), z, z.bool(), z, z, origin)

    @staticmethod
    def concat(sets: Sequence[ImageSet], size: int, origin: str) -> ImageSet:
        sets = [s for s in sets if len(s)]
        if not sets:
            return ImageSet.empty(size, origin)
        return ImageSet(torch.cat([s.images for s in sets]), torch.cat([s.labels for s in sets]),
                        torch.cat([s.is_ood for s in sets]), torch.cat([s.source_label for s in sets]),
                        torch.cat([s.source_index for s in sets]), origin,
                        torch.cat([s.other_label for s in sets]), torch.cat([s.mix_weight for s in sets]))


def _from_sources(store: Store, rows: np.ndarray, sources: np.ndarray, role: str) -> np.ndarray:
    """The rows of ``rows`` made from a DATA.h5 row in ``sources`` (the few-shot draw): images made from other
    real images would bring what the draw leaves out back into training. Source-free rows (text-to-image,
    ``source_index`` -1) saw no real image and are kept."""
    made_from = store.column("source_index").astype(np.int64)[rows]
    keep = rows[np.isin(made_from, sources) | (made_from < 0)]
    if len(keep) == 0:
        raise InputError(f"none of the {len(rows)} rows of {store.path} ({role}) was made from the few-shot "
                         "draw's images", hint="make it with `dsc augment --examples-per-class K --seed S` with "
                         "this run's --examples-per-class and --few-shot-seed (default: --seed)")
    if len(keep) < len(rows):
        log.info("few-shot: %d of %d rows of %s (%s) come from the drawn images; the others are left out",
                 len(keep), len(rows), store.path.name, role)
    return keep


@dataclass
class TrainingInputs:
    """The opened stores of a training command, checked against each other."""

    data: Store
    synthetic: list[Store]
    negatives: list[Store]
    overlaps: list[Overlap] = field(default_factory=list)  # every (synthetic, negatives) pair, checked

    def record(self) -> dict[str, Any]:
        """Paths and fingerprints, and what the negatives share with the positives (always 0 images), for
        run.json."""
        def one(s: Store) -> dict[str, Any]:
            out = {"path": str(s.path.resolve()), "fingerprint": s.fingerprint, "kind": s.kind, "n": len(s)}
            if s.attrs.get("recipe"):   # a synthetic store's images but for their seeds (dsc/augment/job.py)
                out["recipe"] = s.attrs["recipe"]
            return out
        out = {"data": one(self.data), "synthetic": [one(s) for s in self.synthetic],
               "negatives": [one(s) for s in self.negatives]}
        if self.synthetic and self.negatives:
            out["overlap"] = overlap_summary(self.overlaps)
        return out


def open_inputs(data: Path, synthetic: Sequence[Path] = (), negatives: Sequence[Path] = ()) -> TrainingInputs:
    """Open DATA.h5 and the synthetic/negative stores; refuse foreign or evaluation-only stores, and negatives
    that share an image with the positives (``dsc.store.overlap``)."""
    store = open_store(data, kind="data")
    if not store.has("labels") or not store.has("images"):
        raise InputError(f"{data} has no images/labels", hint="make DATA.h5 with `dsc subset`")
    others = []
    for group in (synthetic, negatives):
        opened = []
        for path in group:
            other = open_store(path, kind="synthetic")
            check_same_source(store, other, training=True)
            opened.append(other)
        others.append(opened)
    overlaps = check_pairs(*others)
    bad = [o for o in overlaps if o.shared]
    if bad:
        raise InputError("; ".join(o.message() for o in bad), hint=bad[0].hint())
    for o in overlaps:
        if o.same_conditions:
            log.warning("%s", o.conditions_warning())
    return TrainingInputs(store, *others, overlaps=overlaps)


def resize_images(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 [n, h, w, 3] -> uint8 [n, size, size, 3] (bilinear, antialiased; square inputs assumed)."""
    t = torch.from_numpy(np.ascontiguousarray(images))
    if t.shape[1] == size and t.shape[2] == size:
        return t
    x = t.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def read_images(store: Store, rows: np.ndarray, size: int, chunk: int = 512) -> torch.Tensor:
    """Read rows of a store in chunks and resize each chunk once, at load time."""
    if len(rows) * size * size * 3 > MAX_IN_MEMORY:
        raise ResourceError(f"{len(rows)} images at {size} px do not fit the in-memory budget",
                            hint="lower --image-size or use fewer images")
    out = torch.empty(len(rows), size, size, 3, dtype=torch.uint8)
    for start in range(0, len(rows), chunk):
        sel = rows[start:start + chunk]
        out[start:start + len(sel)] = resize_images(store.images(sel), size)
    return out


def real_rows(store: Store, split: str) -> np.ndarray:
    """Rows of ``split`` that belong to a known class (held-out classes excluded)."""
    labels = store.labels
    keep = (store.split == split) & (labels >= 0) & (labels < max(len(store.classes), 1))
    keep &= ~store.holdout
    return np.flatnonzero(keep)


def load_real(store: Store, split: str, size: int, *, only: np.ndarray | None = None) -> ImageSet:
    """Real images of one split (train/val/test) of DATA.h5 (of the rows ``only``, a few-shot draw, if given)."""
    rows = real_rows(store, split)
    if only is not None:
        rows = rows[np.isin(rows, only)]
    labels = torch.from_numpy(store.labels[rows].copy())
    idx = torch.from_numpy(rows.astype(np.int64))
    return ImageSet(read_images(store, rows, size), labels, torch.zeros(len(rows), dtype=torch.bool),
                    labels.clone(), idx, "real")


def load_synthetic(store: Store, size: int, *, ood: bool, n_classes: int,
                   sources: np.ndarray | None = None) -> ImageSet:
    """Normal (``ood=False``) or OOD (``ood=True``) rows of a synthetic store (``Store.is_ood``); with
    ``sources`` (a few-shot draw of DATA.h5's rows) only the rows made from those images."""
    n = len(store)
    rows = np.flatnonzero(store.is_ood if ood else ~store.is_ood)
    role = "--negatives" if ood else "--synthetic"
    if len(rows) == 0:
        raise InputError(f"{store.path} has no {'OOD' if ood else 'in-distribution'} rows to use as {role}",
                         hint="pass OOD stores (augment --mode ood) with --negatives and normal stores with "
                              "--synthetic")
    if len(rows) < n:
        log.warning("%s: using %d of %d rows as %s (the others are %s)", store.path, len(rows), n, role,
                    "in-distribution" if ood else "OOD")
    if not store.has("source_index"):
        raise InputError(f"{store.path} has no source_index column", hint="recreate it with `dsc augment`")
    if sources is not None:
        rows = _from_sources(store, rows, sources, role)
    source_index = store.column("source_index").astype(np.int64)[rows]
    labels = store.labels[rows]
    source_label = store.column("source_label").astype(np.int64)[rows] if store.has("source_label") else labels
    if ood:
        labels = np.full(len(rows), -1, dtype=np.int64)
    elif (labels < 0).any() or (labels >= n_classes).any():
        raise InputError(f"{store.path} has in-distribution rows with labels outside 0..{n_classes - 1}",
                         hint="the store does not match DATA.h5's classes")
    other, weight = (None, None) if ood else mix_columns(store, rows, n_classes)
    return ImageSet(read_images(store, rows, size), torch.from_numpy(labels.astype(np.int64)),
                    torch.full((len(rows),), ood, dtype=torch.bool), torch.from_numpy(source_label.copy()),
                    torch.from_numpy(source_index.copy()), "negatives" if ood else "synthetic", other, weight)


def mix_columns(store: Store, rows: np.ndarray, n_classes: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(other_label, mix_weight) of ``rows``, or (None, None) for a store without ``mix_weight`` (w = 0 for
    every row: hard labels). Refuses weights outside [0, 1] and mixed rows without a class j in range."""
    if not store.has("mix_weight"):
        return None, None
    weight = store.column("mix_weight").astype(np.float32)[rows]
    if not np.isfinite(weight).all() or (weight < 0).any() or (weight > 1).any():
        raise InputError(f"{store.path} has mix_weight values outside [0, 1]",
                         hint="recreate it with `dsc augment --strategy diff-mix`")
    labels = store.labels[rows]
    if not (weight > 0).any():
        return torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(weight)
    if not store.has("other_label"):
        raise InputError(f"{store.path} has mixed rows (mix_weight > 0) but no other_label column",
                         hint="recreate it with `dsc augment --strategy diff-mix`")
    other = np.where(weight > 0, store.column("other_label").astype(np.int64)[rows], labels).astype(np.int64)
    if (other < 0).any() or (other >= n_classes).any():
        raise InputError(f"{store.path} has mixed rows whose other_label is outside 0..{n_classes - 1}",
                         hint="the store does not match DATA.h5's classes")
    return torch.from_numpy(other), torch.from_numpy(weight)
