"""The evaluation suite shared by `dsc probe` and `dsc baseline`: test metrics, corruption robustness and
OOD detection of an (encoder, classifier head) pair on a DATA.h5 store.

Usage from a training loop (after model selection on val; test is used here only)::

    from dsc.evaluate import EvalOptions, evaluate_classifier
    result = evaluate_classifier(backbone, classifier, data_store, classes=data_store.classes,
                                 options=EvalOptions(image_size=64, seed=seed), ood_stores=[...])
    metrics.update(result)   # keys: "test", "robustness", "ood", "ood_stores", "timings"

Models are evaluated on the device they are on (never moved). ``backbone`` is a
``dsc.contracts.Backbone`` (its ``module`` maps normalised images to features, its
``data_config`` gives mean/std) or a bare ``nn.Module`` (then pass ``mean``/``std`` in the options);
``head`` maps features to logits. Neither is modified (eval mode during evaluation, restored after).
Fields that cannot be computed (no held-out classes, no OOD stores, corruptions off) are absent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dsc.console import progress
from dsc.evaluate.corruptions import CORRUPTIONS, DEFAULT_SEVERITIES, corrupt
from dsc.evaluate.features import (
    apply_head,
    default_image_size,
    extract_features,
    module_device,
    normalisation,
)
from dsc.evaluate.metrics import classification_metrics, top_k_accuracy
from dsc.evaluate.ood import KNN_K, ood_detection

if TYPE_CHECKING:
    from dsc.store import Store

log = logging.getLogger(__name__)


@dataclass
class EvalOptions:
    """How to evaluate. ``corruptions=()`` skips robustness; ``image_size=None`` uses the data config."""

    image_size: int | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    batch_size: int = 256
    device: str | torch.device | None = None  # only for parameter-free modules: models run where they are
    seed: int = 0
    corruptions: Sequence[str] = CORRUPTIONS
    severities: Sequence[int] = DEFAULT_SEVERITIES
    knn_k: int = KNN_K
    features: dict[str, torch.Tensor] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------- row selection
def holdout_mask(data: Store) -> np.ndarray:
    """Rows of held-out classes (never trained on): ``Store.holdout``, else a negative label."""
    return data.holdout | (data.labels < 0) if data.has("labels") else data.holdout.copy()


def in_distribution_indices(data: Store, split: str) -> np.ndarray:
    """Rows of ``split`` that belong to the trained classes (held-out / OOD rows excluded)."""
    return np.flatnonzero((data.split == split) & ~holdout_mask(data) & ~data.is_ood)


def holdout_indices(data: Store) -> np.ndarray:
    """Held-out-class rows of DATA.h5 (empty when the store has none)."""
    return np.flatnonzero(holdout_mask(data))


def ood_indices(store: Store) -> np.ndarray:
    """OOD rows of a synthetic store (``Store.is_ood``: its ``is_ood`` column, never the settings' mode)."""
    return np.flatnonzero(store.is_ood)


# -------------------------------------------------------------------------------------------- the suite
def _unwrap(backbone: Any) -> tuple[torch.nn.Module, dict[str, Any]]:
    module = getattr(backbone, "module", backbone)
    return module, dict(getattr(backbone, "data_config", {}) or {})


def robustness(encoder: torch.nn.Module, head: torch.nn.Module, data: Any, test_idx: np.ndarray,
               labels: np.ndarray, clean_top1: float, *, image_size: int, mean: Sequence[float],
               std: Sequence[float], options: EvalOptions) -> dict[str, Any]:
    """``{"clean_top1", "mean_corruption_top1", "per_corruption": {name: {"1": top1, ...}}, "severities"}``."""
    per: dict[str, dict[str, float]] = {}
    passes = len(options.corruptions) * len(options.severities)
    with progress("img") as bar:
        task = bar.add_task("corruptions", total=passes * len(test_idx), status="")
        for name in options.corruptions:
            per[name] = {}
            for sev in options.severities:
                def tf(x: torch.Tensor, rows: np.ndarray, _n: str = name, _s: int = sev) -> torch.Tensor:
                    return corrupt(x, _n, _s, seed=options.seed, index=rows)

                bar.update(task, status=f"{name} s{sev}")
                feats = extract_features(encoder, data, test_idx, image_size=image_size, mean=mean, std=std,
                                         batch_size=options.batch_size, device=options.device, transform=tf,
                                         advance=lambda n: bar.advance(task, n))
                logits = apply_head(head, feats, device=options.device)
                per[name][str(sev)] = top_k_accuracy(logits, labels, 1)
    values = [v for d in per.values() for v in d.values()]
    return {"clean_top1": clean_top1, "mean_corruption_top1": float(np.mean(values)),
            "severities": [int(s) for s in options.severities], "per_corruption": per}


def evaluate_classifier(backbone: Any, head: torch.nn.Module, data: Any, *, classes: Sequence[str] | None = None,
                        options: EvalOptions | None = None, ood_stores: Sequence[Any] = ()) -> dict[str, Any]:
    """Test metrics, robustness and OOD detection. Returns a dict with keys

    - ``test``: top1, top5, macro_f1, ece, n, per_class, confusion (see ``classification_metrics``);
    - ``robustness`` (unless ``options.corruptions`` is empty): clean vs per-corruption/severity top-1;
    - ``ood``: ``{"holdout": {...}, "synthetic": {...}}``, each ``{"msp"|"energy"|"knn": {"auroc", "fpr95",
      "n_in", "n_out"}}``; a set is absent when there is no such data;
    - ``ood_stores``: path, fingerprint and OOD row count of each evaluation-only store used;
    - ``timings``: {"evaluate": seconds, plus per-part seconds}.

    ``options.features`` may hold precomputed features ("train", "test", "holdout", "ood:<fingerprint>"); missing
    ones are computed and added (so the caller can cache them). ``ood_stores`` are open ``Store`` objects
    (evaluation-only synthetic stores); their OOD rows are pooled into ``ood.synthetic``.
    """
    opts = options or EvalOptions()
    start = time.perf_counter()
    timings: dict[str, float] = {}
    encoder, cfg = _unwrap(backbone)
    mean_cfg, std_cfg = normalisation(cfg)
    mean = tuple(opts.mean) if opts.mean is not None else mean_cfg
    std = tuple(opts.std) if opts.std is not None else std_cfg
    size = opts.image_size or default_image_size(cfg)
    classes = list(classes if classes is not None else data.classes)
    cache = opts.features
    dev = module_device(encoder, opts.device)

    def feats(key: str, store: Any, idx: np.ndarray) -> torch.Tensor:
        if key not in cache:
            t0 = time.perf_counter()
            cache[key] = extract_features(encoder, store, idx, image_size=size, mean=mean, std=std,
                                          batch_size=opts.batch_size, device=dev, description=key)
            timings["features"] = round(timings.get("features", 0.0) + time.perf_counter() - t0, 4)
        return cache[key]

    test_idx = in_distribution_indices(data, "test")
    labels = data.labels[test_idx]
    test_feats = feats("test", data, test_idx)
    test_logits = apply_head(head, test_feats, device=opts.device)
    result: dict[str, Any] = {"test": classification_metrics(test_logits, labels, classes)}

    if opts.corruptions and len(test_idx):
        t0 = time.perf_counter()
        result["robustness"] = robustness(encoder, head, data, test_idx, labels, result["test"]["top1"],
                                          image_size=size, mean=mean, std=std, options=opts)
        timings["corruptions"] = round(time.perf_counter() - t0, 4)

    _ood(data, ood_stores, feats, head, test_logits, test_feats, opts, result, timings)
    timings["evaluate"] = round(time.perf_counter() - start, 4)
    result["timings"] = timings
    return result


def _ood(data: Any, ood_stores: Sequence[Any], feats: Callable[[str, Any, np.ndarray], torch.Tensor],
         head: torch.nn.Module, test_logits: torch.Tensor, test_feats: torch.Tensor, opts: EvalOptions,
         result: dict[str, Any], timings: dict[str, float]) -> None:
    """OOD detection of the test images against the held-out classes and the evaluation-only OOD stores'
    rows, into ``result["ood"]`` (and ``result["ood_stores"]``); ``feats(key, store, rows)``: cached features."""
    ood: dict[str, Any] = {}
    hold_idx = holdout_indices(data)
    sets: list[tuple[str, list[tuple[str, Any, np.ndarray]]]] = []
    if len(hold_idx):
        sets.append(("holdout", [("holdout", data, hold_idx)]))
    synth = [(f"ood:{s.fingerprint}", s, ood_indices(s)) for s in ood_stores]
    synth = [t for t in synth if len(t[2])]
    if synth:
        sets.append(("synthetic", synth))
        result["ood_stores"] = [{"path": str(s.path), "fingerprint": s.fingerprint, "n": int(len(i))}
                                for _, s, i in synth]
    if sets and len(test_logits):
        t0 = time.perf_counter()
        train = feats("train", data, in_distribution_indices(data, "train"))
        for name, parts in sets:
            out_feats = torch.cat([feats(key, store, idx) for key, store, idx in parts])
            out_logits = apply_head(head, out_feats, device=opts.device)
            ood[name] = ood_detection(test_logits, out_logits, in_features=test_feats, out_features=out_feats,
                                      train_features=train if len(train) else None, k=opts.knn_k)
        timings["ood"] = round(time.perf_counter() - t0, 4)
    if ood:
        result["ood"] = ood
