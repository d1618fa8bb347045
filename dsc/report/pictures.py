"""Pictures (matplotlib, Agg backend, imported only when a picture is asked for):

- ``samples_grid``: per class, a few real train images | normal synthetic | OOD synthetic images;
- ``confusion_png``: the row-normalised confusion matrix of each configuration (summed over seeds);
- ``embedding_map_png``: a 2-D PCA projection of a run's test features (``embeddings.h5``), coloured by
  class, with OOD / held-out rows marked.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from dsc.errors import InputError

log = logging.getLogger(__name__)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    """Write a figure atomically (temporary name, then rename)."""
    import io

    from dsc.outputs import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def _tile(images: np.ndarray, k: int, size: int) -> np.ndarray:
    """k images side by side at size x size (blank where missing), with a 2-px gap."""
    from PIL import Image

    out = np.full((size, k * (size + 2), 3), 255, dtype=np.uint8)
    for i, im in enumerate(images[:k]):
        if im.shape[:2] != (size, size):
            im = np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))
        out[:, i * (size + 2):i * (size + 2) + size] = im
    return out


def samples_grid(path: Path, data_path: Path, synthetic_paths: list[Path], *, per_class: int = 4,
                 seed: int = 0, max_classes: int = 20) -> Path:
    """Rows: classes; column groups: real | normal synthetic | OOD synthetic (``per_class`` each)."""
    from dsc.store import open_store

    rng = np.random.default_rng(seed)
    data = open_store(data_path, kind="data")
    classes = data.classes[:max_classes]
    train = np.flatnonzero((data.split == "train") & (data.labels >= 0))
    syn = [open_store(p, kind="synthetic") for p in synthetic_paths]
    size = min(96, int(data.image_shape[0]) if data.image_shape else 64)

    def pick(store: Any, rows: np.ndarray) -> np.ndarray:
        if not len(rows):
            return np.empty((0, size, size, 3), np.uint8)
        rows = np.sort(rng.choice(rows, size=min(per_class, len(rows)), replace=False))
        return store.images(rows)

    strips = []
    for c, _name in enumerate(classes):
        real = pick(data, train[data.labels[train] == c])
        normal, ood = [], []
        for s in syn:
            src = (s.column("source_label") if s.has("source_label") else s.labels).astype(np.int64)
            flag = s.column("is_ood").astype(bool) if s.has("is_ood") else np.zeros(len(s), bool)
            normal.append(pick(s, np.flatnonzero((src == c) & ~flag)))
            ood.append(pick(s, np.flatnonzero((src == c) & flag)))
        normal_im = np.concatenate(normal)[:per_class] if normal else np.empty((0, size, size, 3), np.uint8)
        ood_im = np.concatenate(ood)[:per_class] if ood else np.empty((0, size, size, 3), np.uint8)
        gap = np.full((size, 10, 3), 255, np.uint8)
        strips.append(np.concatenate([_tile(real, per_class, size), gap, _tile(normal_im, per_class, size), gap,
                                      _tile(ood_im, per_class, size)], axis=1))
    if not strips:
        raise InputError(f"{data_path} has no classes to show")
    plt = _pyplot()
    width = strips[0].shape[1]
    fig_w = 3 * per_class * 0.8
    fig, axes = plt.subplots(len(strips), 1, figsize=(fig_w, fig_w * size / width * len(strips) * 1.08 + 0.5),
                             squeeze=False, gridspec_kw={"hspace": 0.08})
    for ax, strip, name in zip(axes[:, 0], strips, classes, strict=False):
        ax.imshow(strip)
        ax.set_yticks([])
        ax.set_xticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    for j, title in enumerate(("real", "normal synthetic", "OOD synthetic")):
        axes[0, 0].text((j + 0.5) * width / 3, -6, title, ha="center", va="bottom", fontsize=10)
    return _save(fig, path)


def confusion_png(path: Path, groups: list[Any], max_groups: int = 6) -> Path:
    """Row-normalised confusion matrices, one panel per configuration (summed over its seeds)."""
    panels = []
    for g in groups[:max_groups]:
        total, names = None, None
        for r in g.runs:
            m = ((r.metrics or {}).get("test") or {}).get("confusion")
            if m is None:
                continue
            m = np.asarray(m, dtype=np.float64)
            if total is None:
                total, names = m.copy(), (r.metrics or {}).get("classes") or [str(i) for i in range(len(m))]
            elif m.shape == total.shape:
                total += m
        if total is not None:
            panels.append((g.name, total / np.clip(total.sum(1, keepdims=True), 1, None), names))
    if not panels:
        raise InputError("no confusion matrices in these runs", hint="metrics.json test.confusion is missing")
    plt = _pyplot()
    k = len(panels[0][2])
    side = max(3.0, 0.35 * k + 1.5)
    fig, axes = plt.subplots(1, len(panels), figsize=(side * len(panels) * 1.1, side), squeeze=False,
                             gridspec_kw={"wspace": 0.35})
    for ax, (name, m, names) in zip(axes[0], panels, strict=True):
        im = ax.imshow(m, vmin=0, vmax=1, cmap="Blues")
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlabel("predicted")
    axes[0, 0].set_ylabel("true")
    fig.colorbar(im, ax=list(axes[0]), shrink=0.7, label="share of true class")
    return _save(fig, path)


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Projection on the first two principal components (sign fixed: largest loading positive)."""
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    comps = vt[:2]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])
    proj = xc @ (comps * signs[:, None]).T
    return proj if proj.shape[1] == 2 else np.pad(proj, ((0, 0), (0, 2 - proj.shape[1])))


FEATURE_COLUMNS = ("features", "embeddings", "feats")


def _embeddings(run_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(features, labels, ood mask, classes) of the test split (+ all OOD rows) of RUN/embeddings.h5."""
    from dsc.store import open_store

    store = open_store(run_dir / "embeddings.h5", kind="embeddings")
    col = next((c for c in FEATURE_COLUMNS if store.has(c)), None)
    if col is None:
        raise InputError(f"{run_dir}/embeddings.h5 has no feature column", hint=f"it has {store.columns}")
    n = len(store)
    labels = store.labels if store.has("labels") else np.zeros(n, np.int64)
    split = store.split
    # `dsc probe` stores sets "train", "val", "test", "holdout" (held-out classes), "ood:*" and "synthetic:*"
    ood = (labels < 0) | (split == "holdout") | (split == "ood")
    for flag in ("is_ood", "holdout"):
        if store.has(flag):
            ood |= store.column(flag).astype(bool)
    rows = np.flatnonzero((split == "test") | ood) if (split == "test").any() else np.arange(n)
    feats = store.read(col, rows).astype(np.float64)
    return feats.reshape(len(rows), -1), labels[rows], ood[rows], store.classes


def embedding_map_png(path: Path, runs: list[Any], seed: int = 0, max_points: int = 5000) -> Path:
    """PCA map of the first run (in the given order) that has an embeddings.h5."""
    run = next((r for r in runs if (Path(r.path) / "embeddings.h5").is_file()), None)
    if run is None:
        raise InputError("none of these runs has embeddings.h5", hint="run `dsc probe` on a pretrain run")
    feats, labels, ood, classes = _embeddings(Path(run.path))
    if len(feats) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(feats), max_points, replace=False))
        feats, labels, ood = feats[keep], labels[keep], ood[keep]
    norm = np.linalg.norm(feats, axis=1, keepdims=True)
    xy = pca_2d(feats / np.clip(norm, 1e-12, None))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    cmap = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
    for c, name in enumerate(classes):
        sel = (labels == c) & ~ood
        if sel.any():
            ax.scatter(xy[sel, 0], xy[sel, 1], s=12, color=cmap(c % cmap.N), label=name, alpha=0.8)
    if ood.any():
        ax.scatter(xy[ood, 0], xy[ood, 1], s=22, marker="x", color="black", label="OOD / held-out", alpha=0.8)
    ax.set_title(f"test features of {run.name} (PCA of L2-normalised features)", fontsize=10)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=7, markerscale=1.2, loc="best", ncol=2 if len(classes) > 10 else 1)
    return _save(fig, path)
