"""The probe stage: a linear classifier on frozen-encoder features of a `dsc pretrain` run.

1. The run's encoder (``best`` or ``last`` checkpoint, eval mode) embeds train/val/test (and held-out and
   OOD) images once; the features are cached in ``RUN/embeddings.h5`` (dsc.evaluate.embeddings).
2. One linear layer is trained on the cached features (SGD, momentum 0.9, cosine schedule, seeded; see
   dsc.evaluate.linear); the epoch with the best val top-1 is kept. Test data is never used for selection.
3. The evaluation suite (dsc.evaluate.suite) computes test metrics, robustness under corruptions (images go
   through the encoder again) and OOD detection; `probe_metrics` shapes them into ``RUN/probe/metrics.json``.

The job around it (lock, multi-process session, output files) is dsc/probe.py.
SupContrast's probe uses the encoder output before the projection head, not normalised; so does this.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dsc import console, few_shot
from dsc.arms import arm_label
from dsc.errors import InputError, MismatchError
from dsc.evaluate.embeddings import (
    EMBEDDINGS,
    FeatureSet,
    embed,
    embedding_attrs,
    make_cache_key,
    required_sets,
)
from dsc.evaluate.features import resolve_device
from dsc.evaluate.linear import fit_linear
from dsc.evaluate.suite import EvalOptions, evaluate_classifier, ood_indices
from dsc.provenance import Timings, file_sha256, now, provenance
from dsc.settings import ProbeSettings
from dsc.store import Store, check_same_source, open_store

log = logging.getLogger(__name__)


@dataclass
class ProbeFit:
    """What the probe stage computed for a run (main process): the head, its history and the evaluation."""

    head: nn.Linear
    epoch: int
    val_top1: float | None
    n_val: int
    history: list[dict[str, Any]]
    evaluation: dict[str, Any]
    data: Store
    classes: list[str]
    ood_stores: list[Store]
    checkpoint: dict[str, Any]
    embeddings: dict[str, Any]
    inputs: dict[str, Any] = field(default_factory=dict)
    soft_labels: int = 0  # synthetic training rows with a soft (Diff-Mix) target


# ------------------------------------------------------------------------------------------ the run
def open_run_inputs(run_dir: Path, run_info: dict[str, Any], *, with_synthetic: bool,
                    ood: Sequence[Path]) -> tuple[Store, list[Store], list[Store]]:
    """DATA.h5 (fingerprint checked), the run's synthetic stores (when needed) and the OOD test stores."""
    inputs = run_info.get("inputs") or {}
    rec = inputs.get("data") or {}
    if "path" not in rec:
        raise InputError(f"{run_dir}/run.json records no DATA.h5", hint="is this a `dsc pretrain` run directory?")
    data = open_store(rec["path"], kind="data")
    if rec.get("fingerprint") and data.fingerprint != rec["fingerprint"]:
        raise MismatchError(f"{data.path} changed since the run was trained (fingerprint {data.fingerprint}, "
                            f"run.json records {rec['fingerprint']})", hint="probe with the DATA.h5 the run used")
    synthetic: list[Store] = []
    if with_synthetic:
        recs = inputs.get("synthetic") or []
        if not recs:
            raise InputError(f"--with-synthetic: {run_dir} was trained without synthetic stores",
                             hint="drop --with-synthetic, or probe a run pretrained with --synthetic")
        for r in recs:
            s = open_store(r["path"], kind="synthetic")
            if r.get("fingerprint") and s.fingerprint != r["fingerprint"]:
                raise MismatchError(f"{s.path} changed since the run was trained", hint="regenerate the run")
            synthetic.append(s)
    ood_stores: list[Store] = []
    for path in ood:
        s = open_store(path, kind="synthetic")
        check_same_source(data, s, training=False)
        if not s.evaluation_only:
            raise InputError(f"--ood {s.path} was generated from training images, not held-out ones",
                             hint="make test OOD data with `dsc augment --mode ood --split test`")
        if len(ood_indices(s)) == 0:
            raise InputError(f"--ood {s.path} has no OOD rows (is_ood)", hint="pass a store made with --mode ood")
        ood_stores.append(s)
    return data, synthetic, ood_stores


def _load_encoder(run_dir: Path, run_info: dict[str, Any], settings: ProbeSettings, ckpt: dict[str, Any],
                  timings: Timings) -> tuple[Any, int, str, str]:
    """The run's frozen encoder, the image size it was trained at, its weights' hash (16 hex digits) and
    the device type it runs on."""
    from dsc.train.checkpoint import checkpoint_dir, load_encoder

    bb_info = run_info.get("backbone") or {}
    dev = resolve_device(settings.device)
    with timings.stage("load"), console.status(f"building {bb_info.get('name') or 'the encoder'} from the "
                                               f"{settings.checkpoint} checkpoint…"):
        backbone, _ = load_encoder(run_dir, settings.checkpoint, device=str(dev))
    run_settings = run_info.get("settings") or {}
    image_size = int(run_settings.get("image_size") or (backbone.data_config.get("input_size") or [224])[-1])
    weights = checkpoint_dir(run_dir) / ckpt.get("files", {}).get("model", f"{settings.checkpoint}.safetensors")
    return backbone, image_size, file_sha256(weights)[:16], dev.type


# ------------------------------------------------------------------------------------------ the stage
def run_probe_stage(run_dir: Path, run_info: dict[str, Any], settings: ProbeSettings, *, ood: Sequence[Path],
                    recompute_features: bool, timings: Timings) -> ProbeFit | None:
    """Embed (or reuse embeddings.h5), fit the linear head on val and evaluate it; None off the main process.

    Under ``accelerate launch``/``torchrun`` every process shares the embedding pass; only the main one
    fits and evaluates.
    """
    from dsc import parallel
    from dsc.train.checkpoint import read_checkpoint_info

    ckpt = read_checkpoint_info(run_dir, settings.checkpoint)
    data, synthetic, ood_stores = open_run_inputs(run_dir, run_info, with_synthetic=settings.with_synthetic, ood=ood)
    classes = list(data.classes)
    if len(classes) < 2:
        raise InputError(f"{data.path} has {'1 class' if len(classes) == 1 else f'{len(classes)} classes'}; a "
                         "probe needs at least 2")
    backbone, image_size, ckpt_hash, device = _load_encoder(run_dir, run_info, settings, ckpt, timings)
    bb_name = (run_info.get("backbone") or {}).get("name")
    key = make_cache_key(checkpoint=ckpt_hash, data=data, image_size=image_size, backbone=bb_name,
                         device=device)
    required = required_sets(data, synthetic, ood_stores)
    checkpoint = {"which": settings.checkpoint, "sha256_16": ckpt_hash, "epoch": ckpt.get("epoch")}
    attrs = embedding_attrs(required, backbone, data=data, key=key, checkpoint=checkpoint, backbone_name=bb_name,
                            image_size=image_size)
    emb_path = run_dir / EMBEDDINGS
    with timings.stage("features"):
        sets, reused, encoded = embed(backbone, required, emb_path, cache_key=key, image_size=image_size,
                                      settings=settings, data=data, attrs=attrs, force=recompute_features)
    if not parallel.is_main():
        return None
    train_sets = _few_shot([sets["train"]] + [sets[f"synthetic:{s.fingerprint}"] for s in synthetic],
                           [data, *synthetic], data, run_info)
    soft = _soft_targets(train_sets, [data, *synthetic], len(classes))
    head, epoch, val_top1, history, n_val = _fit_head(train_sets, sets["val"], data, classes, settings, timings,
                                                      soft=None if soft is None else soft[0])
    evaluation = _evaluate(backbone, head, sets, data, classes, ood_stores, settings, image_size, timings)
    return ProbeFit(head, epoch, val_top1, n_val, history, evaluation, data, classes, ood_stores,
                    checkpoint={"which": settings.checkpoint, "epoch": ckpt.get("epoch"), "sha256_16": ckpt_hash},
                    embeddings={"path": str(emb_path), "reused": reused, "encoded": encoded},
                    inputs=attrs["inputs"], soft_labels=0 if soft is None else soft[1])


def _soft_targets(train_sets: Sequence[FeatureSet], stores: Sequence[Store], n_classes: int
                  ) -> tuple[torch.Tensor, int] | None:
    """Probability targets [N, classes] of the concatenated training rows, as `dsc baseline` trains on them:
    one-hot, and ``(1 - w) y_i + w y_j`` for a synthetic row with ``mix_weight`` w > 0 (Diff-Mix); with the
    number of such rows. None when no row is mixed (the probe then fits the hard labels, as before)."""
    from dsc.train.mixing import soft_targets

    parts, mixed = [], 0
    for fs, store in zip(train_sets, stores, strict=True):
        labels = torch.from_numpy(fs.labels.astype(np.int64))
        weight = torch.from_numpy(store.mix_weight[fs.rows]) if store.kind == "synthetic" and len(fs.rows) \
            else torch.zeros(len(labels))
        if not (weight > 0).any():   # real images, or a store without Diff-Mix images: one-hot
            parts.append((labels, labels, labels, torch.zeros(len(labels))))
            continue
        source, other = (torch.from_numpy(store.column(c).astype(np.int64)[fs.rows])
                         for c in ("source_label", "other_label"))
        parts.append((labels, source, other, weight))
        mixed += int((weight > 0).sum())
    if not mixed:
        return None
    cols = [torch.cat([p[k] for p in parts]) for k in range(4)]
    return soft_targets(*cols, n_classes), mixed


def _few_shot(train_sets: list[FeatureSet], stores: list[Store], data: Store, run_info: dict[str, Any]
              ) -> list[FeatureSet]:
    """The probe of a few-shot run is fitted on the same real images the encoder was trained on (and on the
    synthetic rows made from them): the run's draw, made again from its recorded settings."""
    recorded = few_shot.record(run_info.get("settings") or {})
    if recorded is None:
        return train_sets
    k, seed = recorded["examples_per_class"], recorded["seed"]
    drawn = few_shot.draw(data.labels, data.split, list(range(len(data.classes))), k, seed)
    out = []
    for fs, store in zip(train_sets, stores, strict=True):
        sources = fs.rows if store is data else store.column("source_index").astype(np.int64)[fs.rows]
        keep = np.isin(sources, drawn) | (sources < 0)  # source-free (text-to-image) rows saw no real image
        out.append(FeatureSet(fs.key, fs.features[torch.from_numpy(keep)], fs.labels[keep], fs.rows[keep]))
    log.info("few-shot run (%d per class, draw seed %d): the probe is fitted on %d real train images", k, seed,
             len(out[0].rows))
    return out


def _cat(sets: Sequence[FeatureSet]) -> tuple[torch.Tensor, torch.Tensor]:
    feats = torch.cat([s.features for s in sets]).float()
    labels = torch.from_numpy(np.concatenate([s.labels for s in sets]).astype(np.int64))
    return feats, labels


def _fit_head(train_sets: Sequence[FeatureSet], val: FeatureSet, data: Store, classes: list[str],
              settings: ProbeSettings, timings: Timings, *, soft: torch.Tensor | None = None
              ) -> tuple[nn.Linear, int, float | None, list[dict[str, Any]], int]:
    """The linear head selected on val: (head, epoch, val top-1, history, number of val rows); fitted to the
    probability targets ``soft`` when given (mixed synthetic rows), else to the labels."""
    train_x, train_y = _cat(train_sets)
    if len(train_y) == 0:
        raise InputError(f"{data.path} has no training rows", hint="check the store's splits")
    if (train_y < 0).any() or (train_y >= len(classes)).any():
        raise MismatchError("synthetic positives have labels outside the run's classes",
                            hint="use synthetic stores generated from this DATA.h5")
    val_x, val_y = _cat([val])
    with timings.stage("probe"):
        fit = fit_linear(train_x, train_y if soft is None else soft, len(classes), solver="sgd", val_x=val_x,
                         val_y=val_y,
                         epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
                         weight_decay=settings.weight_decay, seed=settings.seed, device=settings.device)
    return fit.head, fit.epoch, fit.val_top1, fit.history, int(len(val_y))


def _evaluate(backbone: Any, head: nn.Linear, sets: dict[str, FeatureSet], data: Store, classes: list[str],
              ood_stores: Sequence[Store], settings: ProbeSettings, image_size: int, timings: Timings
              ) -> dict[str, Any]:
    """The evaluation suite on the cached test (held-out, OOD) features; corruptions re-encode images."""
    features = {"train": sets["train"].features, "test": sets["test"].features}
    if "holdout" in sets:
        features["holdout"] = sets["holdout"].features
    for s in ood_stores:
        features[f"ood:{s.fingerprint}"] = sets[f"ood:{s.fingerprint}"].features
    opts = EvalOptions(image_size=image_size, batch_size=settings.eval_batch_size, device=settings.device,
                       seed=settings.seed, corruptions=() if not settings.corruptions else EvalOptions.corruptions,
                       severities=settings.severities, knn_k=settings.knn_k, features=features)
    with timings.stage("evaluate"):
        return evaluate_classifier(backbone, head, data, classes=classes, options=opts, ood_stores=list(ood_stores))


# ------------------------------------------------------------------------------------------ metrics.json
def probe_metrics(fit: ProbeFit, run_dir: Path, run_info: dict[str, Any], settings: ProbeSettings, *,
                  timings: Timings, training: dict[str, Any], sources: dict[str, str]) -> dict[str, Any]:
    """RUN/probe/metrics.json (schema dsc-metrics/1); ``timings["total"]`` is set by the caller."""
    run_settings = run_info.get("settings") or {}
    inputs = run_info.get("inputs") or {}
    normal_fps = [s.get("fingerprint") for s in inputs.get("synthetic") or []]
    ood_fps = [s.get("fingerprint") for s in inputs.get("negatives") or []]
    metrics: dict[str, Any] = {
        "schema": "dsc-metrics/1",
        "method": "supcon+probe",
        "run": run_dir.resolve().name,
        "seed": run_info.get("seed", run_settings.get("seed")),
        "backbone": (run_info.get("backbone") or {}).get("name") or run_settings.get("backbone"),
        "data": {"path": str(fit.data.path), "fingerprint": fit.data.fingerprint},
        "synthetic": {"normal": normal_fps, "ood": ood_fps,
                      "policy": run_info.get("synthetic_policy", run_settings.get("synthetic_policy"))
                      if normal_fps else None,
                      "ood_policy": run_info.get("ood_policy", run_settings.get("ood_policy")) if ood_fps else None,
                      "label": arm_label(normal_fps, ood_fps, run_settings.get("arm")),
                      "probe_with_synthetic": settings.with_synthetic,
                      **({"probe_soft_labels": {"images": fit.soft_labels}} if fit.soft_labels else {})},
        "classes": fit.classes,
        "val": {"top1": fit.val_top1, "n": fit.n_val} if fit.n_val else {"n": 0},
    }
    for key in ("test", "robustness", "ood", "ood_stores"):
        if key in fit.evaluation:
            metrics[key] = fit.evaluation[key]
    if drawn := few_shot.record(run_settings):
        metrics["few_shot"] = drawn
    metrics["timings"] = _timings(run_info, timings, fit.evaluation)
    metrics["selected_epoch"] = fit.epoch
    metrics["training"] = training
    metrics["checkpoint"] = fit.checkpoint
    metrics["embeddings"] = fit.embeddings
    metrics["provenance"] = provenance(settings.model_dump(mode="json"), sources=sources,
                                       inputs={"run": str(run_dir), **fit.inputs,
                                               "ood": [{"path": str(s.path), "fingerprint": s.fingerprint}
                                                       for s in fit.ood_stores]})
    metrics["created"] = now()
    return metrics


def _timings(run_info: dict[str, Any], timings: Timings, evaluation: dict[str, Any]) -> dict[str, Any]:
    """Pretrain time (from run.json), probe, features, evaluate, total and the evaluation's own stages."""
    run_timings = run_info.get("timings") or {}
    pretrain_time = sum(v for v in run_timings.values() if isinstance(v, (int, float)))
    return {**({"pretrain": round(pretrain_time, 4)} if run_timings else {}),
            "probe": timings.get("probe", 0.0), "features": timings.get("features", 0.0),
            "evaluate": timings.get("evaluate", 0.0), "total": timings["total"],
            **{f"evaluate_{k}": v for k, v in evaluation.get("timings", {}).items() if k != "evaluate"}}


def save_head(path: Path, head: nn.Linear) -> None:
    """The probe's linear layer as safetensors (``classifier.weight``/``classifier.bias``), atomically."""
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    save_file({f"classifier.{k}": v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
