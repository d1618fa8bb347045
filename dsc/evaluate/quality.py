"""Synthetic-data quality (docs/quality.md): can the generator make convincing data for this dataset?

Per class of a synthetic store, against the real train images of that class, in one feature space:
count, Fréchet distance and KID, diversity, nearest-real-neighbour distance (near-copies flagged), and the
share a classifier trained on real data only accepts (normal images: confident in the source class) or
still recognises (OOD images: confident in the source class, i.e. not really out-of-distribution).
The tables are drawn by ``dsc.report.quality``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dsc.evaluate.distances import frechet_distance, kid, mean_pairwise_distance, nearest_distances


def _subsample(idx: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(idx, size=k, replace=False)) if len(idx) > k else idx


def _class_stats(real: np.ndarray, syn: np.ndarray, real_nn_median: float, near_ratio: float) -> dict[str, Any]:
    out: dict[str, Any] = {"n": int(len(syn))}
    if not len(syn):
        return out
    out["fd"] = frechet_distance(real, syn)
    out["kid"] = kid(real, syn)
    out["diversity"] = mean_pairwise_distance(syn)
    out["real_diversity"] = mean_pairwise_distance(real)
    if out["diversity"] is not None and out["real_diversity"]:
        out["diversity_ratio"] = out["diversity"] / out["real_diversity"]
    if len(real):
        nn = nearest_distances(syn, real)
        out["nn_real_median"] = float(np.median(nn))
        if real_nn_median > 0:
            out["nn_ratio"] = out["nn_real_median"] / real_nn_median
            out["near_copies"] = int((nn < near_ratio * real_nn_median).sum())
    return out


@dataclass
class _Reference:
    """The real train images' features (a per-class sample), their labels and the common scaling."""

    feats: np.ndarray
    labels: np.ndarray
    mu: np.ndarray
    scale: float
    real_z: np.ndarray = field(default_factory=lambda: np.empty(0))    # feats, scaled
    nn_median: dict[int, float] = field(default_factory=dict)  # per class: median real-to-real NN distance

    def z(self, f: np.ndarray) -> np.ndarray:
        """Features centred on the real mean and divided by the real scale."""
        return (f - self.mu) / self.scale

    def of_class(self, c: int) -> np.ndarray:
        return self.real_z[self.labels == c]


def _reference(data: Any, space: Any, train_idx: np.ndarray, n_classes: int, cap: int,
               rng: np.random.Generator) -> _Reference:
    labels_all = data.labels
    real_idx = np.concatenate([_subsample(train_idx[labels_all[train_idx] == c], cap, rng)
                               for c in range(n_classes)] or [np.empty(0, np.int64)]).astype(np.int64)
    feats = space.extract(data, real_idx, "real features")
    labels = labels_all[real_idx]
    # centre on the real mean and divide by one scale (the real features' RMS spread), so that every
    # feature space gives comparable numbers; per-dimension scaling would blow up near-constant (dead) units
    mu = feats.mean(0)
    scale = float(np.sqrt(((feats - mu) ** 2).sum(1).mean() / max(feats.shape[1], 1))) or 1.0
    ref = _Reference(feats, labels, mu, scale)
    ref.real_z = ref.z(feats)
    for c in range(n_classes):
        rc = ref.of_class(c)
        ref.nn_median[c] = float(np.median(nearest_distances(rc, rc, exclude_self=True))) if len(rc) > 1 \
            else math.nan
    return ref


def _classifier(data: Any, space: Any, ref: _Reference, val_idx: np.ndarray, n_classes: int, *,
                classifier: Path | None, seed: int) -> tuple[Callable[[Any, np.ndarray, np.ndarray], np.ndarray],
                                                             str, float | None]:
    """(probabilities(store, rows, features), description, val top-1 of the probe): a run's classifier,
    or the L-BFGS linear probe fitted on the real train features."""
    if classifier is not None:
        from dsc.evaluate.filter import run_classifier

        predict_images = run_classifier(classifier)
        return (lambda store, rows, feats: predict_images(store.images(rows)),
                f"classifier of run {Path(classifier).name}", None)
    from dsc.evaluate.linear import fit_linear

    probe = fit_linear(ref.feats, ref.labels, n_classes, solver="lbfgs", weight_decay=1e-3, steps=50, seed=seed)
    probe_val = None
    if len(val_idx):
        vf = space.extract(data, val_idx, "real val features")
        probe_val = float((probe.predict_proba(vf).argmax(1) == data.labels[val_idx]).mean())
    return (lambda store, rows, feats: probe.predict_proba(feats),
            f"linear probe on real train features ({space.name})", probe_val)


def _assess_store(path: Path, data: Any, space: Any, ref: _Reference, predict: Callable, settings: Any,
                  rng: np.random.Generator) -> dict[str, Any]:
    from dsc.store import check_same_source, open_store

    syn = open_store(path, kind="synthetic")
    check_same_source(data, syn, training=False)
    n = len(syn)
    is_ood = syn.is_ood
    src = syn.row_classes
    entry: dict[str, Any] = {"path": str(path), "fingerprint": syn.fingerprint, "n": int(n),
                             "n_ood": int(is_ood.sum()), "classes": {}}
    all_normal: list[np.ndarray] = []
    tally = {"accepted": 0, "normal": 0, "ood_source": 0, "ood": 0}
    cap, p_min, near = settings.max_per_class, settings.min_confidence, settings.near_copy_ratio
    for c, name in enumerate(data.classes):
        rows_n = _subsample(np.flatnonzero((src == c) & ~is_ood), cap, rng)
        rows_o = _subsample(np.flatnonzero((src == c) & is_ood), cap, rng)
        rows = np.concatenate([rows_n, rows_o]).astype(np.int64)
        if not len(rows):
            continue
        feats = space.extract(syn, rows, f"{Path(path).name} {name}")
        conf = predict(syn, rows, feats)[:, c]
        fz, k, real_c = ref.z(feats), len(rows_n), ref.of_class(c)
        stats_c: dict[str, Any] = {"n_total": int(((src == c) & ~is_ood).sum()),
                                   "n_ood_total": int(((src == c) & is_ood).sum())}
        if k:
            stats_c["normal"] = _class_stats(real_c, fz[:k], ref.nn_median[c], near)
            stats_c["normal"]["acceptance"] = float((conf[:k] >= p_min).mean())
            stats_c["normal"]["mean_confidence"] = float(conf[:k].mean())
            tally["accepted"] += int((conf[:k] >= p_min).sum())
            tally["normal"] += k
            all_normal.append(fz[:k])
        if len(rows_o):
            stats_c["ood"] = _class_stats(real_c, fz[k:], ref.nn_median[c], near)
            stats_c["ood"]["still_source"] = float((conf[k:] >= p_min).mean())
            tally["ood_source"] += int((conf[k:] >= p_min).sum())
            tally["ood"] += len(rows_o)
        entry["classes"][name] = stats_c
    _overall(entry, ref, all_normal, tally)
    return entry


def _overall(entry: dict[str, Any], ref: _Reference, all_normal: list[np.ndarray], tally: dict[str, int]) -> None:
    if all_normal:
        normal = np.concatenate(all_normal)
        entry["overall"] = {"fd": frechet_distance(ref.real_z, normal), "kid": kid(ref.real_z, normal),
                            "acceptance": tally["accepted"] / tally["normal"] if tally["normal"] else None}
    if tally["ood"]:
        entry.setdefault("overall", {})["ood_still_source"] = tally["ood_source"] / tally["ood"]
        entry["overall"]["ood_flagged"] = tally["ood_source"]


def assess(data_path: Path, synthetic_paths: list[Path], *, settings: Any, encoder: Path | None = None,
           classifier: Path | None = None) -> dict[str, Any]:
    """Quality of each synthetic store against DATA.h5's real train images (``settings``: ReportSettings)."""
    from dsc.evaluate.spaces import encoder_space, fixed_space
    from dsc.evaluate.suite import in_distribution_indices
    from dsc.store import open_store

    rng = np.random.default_rng(settings.seed)
    data = open_store(data_path, kind="data")
    classes = data.classes
    space = encoder_space(Path(encoder))[0] if encoder is not None else fixed_space(settings.features, settings.seed)
    train_idx = in_distribution_indices(data, "train")
    val_idx = in_distribution_indices(data, "val")
    ref = _reference(data, space, train_idx, len(classes), settings.max_per_class, rng)
    predict, classify_desc, probe_val = _classifier(data, space, ref, val_idx, len(classes),
                                                    classifier=classifier, seed=settings.seed)
    stores = [_assess_store(path, data, space, ref, predict, settings, rng) for path in synthetic_paths]
    return {"data": str(data_path), "data_fingerprint": data.fingerprint, "feature_space": space.name,
            "classifier": classify_desc, "classifier_val_top1": probe_val,
            "min_confidence": settings.min_confidence, "near_copy_ratio": settings.near_copy_ratio,
            "max_per_class": settings.max_per_class,
            "real_per_class": {classes[c]: int((ref.labels == c).sum()) for c in range(len(classes))},
            "stores": stores}
