"""The embedding map: a 2-D PCA of a run's L2-normalised test features (``RUN/embeddings.h5`` from
``dsc probe``), the share of variance each axis explains, one colour-and-marker pair per class, held-out
classes and synthetic OOD images with their own markers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsc.errors import InputError
from dsc.report.figures.style import CATEGORY_COLOURS, figure_style, save_figure, wrap

FEATURE_COLUMNS = ("features", "embeddings", "feats")
#: Filled markers for classes (combined with the 7 Okabe-Ito colours: 49 distinct classes).
CLASS_MARKERS = ("o", "s", "^", "D", "v", "p", "h")
HELDOUT = {"marker": "x", "color": "#000000", "label": "held-out classes"}
SYNTHETIC_OOD = {"marker": "*", "color": "#555555", "label": "synthetic OOD"}


@dataclass
class Embedding:
    """Rows of one run's embeddings.h5 to draw."""

    features: np.ndarray      # (n, d)
    labels: np.ndarray        # (n,) class index, < 0 for OOD
    kind: np.ndarray          # (n,) "test" | "holdout" | "ood"
    classes: list[str]


def pca(x: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(projection on the first ``k`` principal components, share of variance each explains). The sign of
    each component is fixed: its largest loading is positive."""
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    comps = vt[:k]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])
    proj = xc @ (comps * signs[:, None]).T
    total = float((s ** 2).sum())
    ratio = (s[:k] ** 2) / total if total > 0 else np.zeros(min(k, len(s)))
    if proj.shape[1] < k:
        proj = np.pad(proj, ((0, 0), (0, k - proj.shape[1])))
        ratio = np.pad(ratio, (0, k - len(ratio)))
    return proj, ratio


def read_embedding(run_dir: Path) -> Embedding:
    """The test rows, held-out-class rows and synthetic OOD rows of ``RUN/embeddings.h5``."""
    from dsc.store import open_store

    store = open_store(run_dir / "embeddings.h5", kind="embeddings")
    col = next((c for c in FEATURE_COLUMNS if store.has(c)), None)
    if col is None:
        raise InputError(f"{run_dir}/embeddings.h5 has no feature column", hint=f"it has {store.columns}")
    n = len(store)
    labels = store.labels if store.has("labels") else np.zeros(n, np.int64)
    split = np.asarray(store.split).astype(str)
    # `dsc probe` writes the splits "train", "val", "test", "holdout" (held-out classes), "synthetic", "ood"
    kind = np.full(n, "", dtype=object)
    kind[split == "test"] = "test"
    kind[split == "holdout"] = "holdout"
    kind[store.holdout] = "holdout"
    ood = (split == "ood") | ((labels < 0) & (kind != "holdout") & (split != "synthetic"))
    ood |= store.is_ood & (kind != "holdout")
    kind[ood] = "ood"
    if not (kind == "test").any():   # a foreign file without splits: draw everything as test rows
        kind[kind == ""] = "test"
    rows = np.flatnonzero(kind != "")
    feats = store.read(col, rows).astype(np.float64).reshape(len(rows), -1)
    return Embedding(feats, labels[rows], kind[rows].astype(str), list(store.classes))


def choose_run(runs: list[Any], choice: str | None) -> Any:
    """The run to map: ``choice`` (a run directory or a run's name) or else the first with embeddings.h5."""
    have = [r for r in runs if (Path(r.path) / "embeddings.h5").is_file()]
    if choice is None:
        if not have:
            raise InputError("none of these runs has embeddings.h5", hint="run `dsc probe` on a pretrain run")
        return have[0]
    want = Path(choice).expanduser()
    for r in runs:
        if r.name == choice or Path(r.path).name == choice or (want.exists() and Path(r.path).resolve()
                                                                == want.resolve()):
            if r not in have:
                raise InputError(f"--embedding-run {choice}: {r.path} has no embeddings.h5",
                                 hint="run `dsc probe` on it, or choose another run")
            return r
    listing = ", ".join(r.name for r in have) or "none"
    raise InputError(f"--embedding-run {choice} is none of the reported runs",
                     hint=f"runs with embeddings.h5: {listing}")


def embedding_figure(run: Any, *, seed: int = 0, max_points: int = 5000) -> Any:
    """The PCA map of ``run``'s embeddings.h5 as a matplotlib Figure (not saved)."""
    emb = read_embedding(Path(run.path))
    feats, labels, kind = emb.features, emb.labels, emb.kind
    if len(feats) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(feats), max_points, replace=False))
        feats, labels, kind = feats[keep], labels[keep], kind[keep]
    norm = np.linalg.norm(feats, axis=1, keepdims=True)
    xy, ratio = pca(feats / np.clip(norm, 1e-12, None))
    present = [c for c in range(len(emb.classes)) if ((labels == c) & (kind == "test")).any()]
    n_entries = len(present) + (kind == "holdout").any() + (kind == "ood").any()
    ncol = 1 if n_entries <= 16 else 2
    with figure_style() as plt:
        fig, ax = plt.subplots(figsize=(5.2 + 1.6 * ncol, 5.0), layout="constrained")
        for i, c in enumerate(present):
            sel = (labels == c) & (kind == "test")
            ax.scatter(xy[sel, 0], xy[sel, 1], s=14, color=CATEGORY_COLOURS[i % len(CATEGORY_COLOURS)],
                       marker=CLASS_MARKERS[(i // len(CATEGORY_COLOURS)) % len(CLASS_MARKERS)],
                       label=wrap(emb.classes[c], 22), alpha=0.8, linewidths=0, gid=f"class:{emb.classes[c]}")
        for name, style in (("holdout", HELDOUT), ("ood", SYNTHETIC_OOD)):
            sel = kind == name
            if sel.any():
                ax.scatter(xy[sel, 0], xy[sel, 1], s=30, marker=style["marker"], color=style["color"],
                           label=f"{style['label']} ({int(sel.sum())})", alpha=0.8, linewidths=1.0,
                           gid=name)
        ax.set_title(wrap(f"test features of {run.name} (PCA of L2-normalised features)", 70))
        ax.set_xlabel(f"PC 1 ({100 * ratio[0]:.1f} % of variance)")
        ax.set_ylabel(f"PC 2 ({100 * ratio[1]:.1f} % of variance)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), ncols=ncol, frameon=False, markerscale=1.2)
    return fig


def write_embedding_figure(path: Path, runs: list[Any], *, choice: str | None = None, seed: int = 0,
                           max_points: int = 5000) -> Path:
    """Draw the map of the chosen run (see :func:`choose_run`) and write it (PNG, PDF or SVG by suffix)."""
    return save_figure(embedding_figure(choose_run(runs, choice), seed=seed, max_points=max_points), path)
