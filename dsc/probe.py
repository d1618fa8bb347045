"""`dsc probe RUN/`: a linear classifier on frozen-encoder features of a `dsc pretrain` run.

1. The run's encoder (``best`` or ``last`` checkpoint, eval mode) embeds train/val/test (and held-out and
   OOD) images once; the features go to ``RUN/embeddings.h5`` and are reused while the checkpoint, DATA.h5,
   image size and device type are unchanged (``recompute_features`` rebuilds them).
2. One linear layer is trained on the cached features (SGD, momentum 0.9, cosine schedule, seeded); the
   epoch with the best val top-1 is kept. Test data is never used for selection.
3. The evaluation suite (dsc.evaluate) computes test metrics, robustness under corruptions (images go
   through the encoder again) and OOD detection; everything lands in ``RUN/probe/metrics.json``.

SupContrast's probe uses the encoder output before the projection head, not normalised; so does this.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dsc import console
from dsc.arms import arm_label
from dsc.errors import InputError, MismatchError
from dsc.evaluate.features import extract_features, normalisation, resolve_device
from dsc.evaluate.linear import fit_linear
from dsc.evaluate.suite import (
    EvalOptions,
    evaluate_classifier,
    holdout_indices,
    in_distribution_indices,
    ood_indices,
)
from dsc.outputs import atomic_write_json, atomic_write_text, check_output
from dsc.provenance import Timings, file_sha256, json_hash, now, provenance
from dsc.report.runs import training_progress
from dsc.settings import ProbeSettings
from dsc.store import Store, StoreWriter, check_same_source, open_store

log = logging.getLogger(__name__)

EMBEDDINGS = "embeddings.h5"
PROBE_DIR = "probe"
#: Bump when feature extraction changes (invalidates every cached embeddings.h5).
FEATURES_VERSION = 1


@dataclass
class ProbeResult:
    """What `dsc probe` produced."""

    metrics: dict[str, Any]
    metrics_path: Path
    embeddings_path: Path
    embeddings_reused: bool
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FeatureSet:
    """Features of rows of one store (``key``: "train", "val", "test", "holdout", "synthetic:<fp>", "ood:<fp>")."""

    key: str
    features: torch.Tensor
    labels: np.ndarray
    rows: np.ndarray


# ------------------------------------------------------------------------------------------ the run
def _open_run_inputs(run_dir: Path, run_info: dict[str, Any], *, with_synthetic: bool,
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


def _normal_rows(store: Store) -> np.ndarray:
    """In-distribution rows of a synthetic store (positives)."""
    return np.flatnonzero(~store.is_ood)


# ------------------------------------------------------------------------------------- embeddings.h5
def _required_sets(data: Store, synthetic: Sequence[Store], ood_stores: Sequence[Store]
                   ) -> dict[str, tuple[Store, np.ndarray]]:
    sets: dict[str, tuple[Store, np.ndarray]] = {
        split: (data, in_distribution_indices(data, split)) for split in ("train", "val", "test")}
    hold = holdout_indices(data)
    if len(hold):
        sets["holdout"] = (data, hold)
    for s in synthetic:
        sets[f"synthetic:{s.fingerprint}"] = (s, _normal_rows(s))
    for s in ood_stores:
        sets[f"ood:{s.fingerprint}"] = (s, ood_indices(s))
    return sets


def _read_embeddings(path: Path, cache_key: str) -> dict[str, FeatureSet]:
    """Feature sets of an existing embeddings.h5 made for ``cache_key`` (empty when absent or stale)."""
    if not path.exists():
        return {}
    try:
        store = open_store(path, kind="embeddings")
    except Exception as exc:  # a damaged cache is recomputed, not fatal
        log.warning("ignoring %s (%s); recomputing it", path, exc)
        return {}
    with store:
        extra = store.attrs.get("extra") or {}
        if extra.get("cache_key") != cache_key:
            log.info("%s was computed for another checkpoint, data or image size; recomputing", path)
            return {}
        keys, feats = store.column("set"), store.column("features")
        labels, rows = store.labels, store.column("row").astype(np.int64)
    out = {}
    for key in dict.fromkeys(keys.tolist()):
        sel = keys == key
        out[key] = FeatureSet(key, torch.from_numpy(feats[sel]), labels[sel], rows[sel])
    return out


def _write_embeddings(path: Path, sets: dict[str, FeatureSet], stores: dict[str, Store], *, data: Store,
                      attrs: dict[str, Any]) -> None:
    dim = next(iter(sets.values())).features.shape[1]
    with StoreWriter(path, kind="embeddings", attrs=attrs, force=True, compression=None) as w:
        w.set_classes(list(data.classes))
        w.create_column("features", (dim,), chunk_rows=1024, compress=False)
        w.create_row_columns()  # labels, split, set, row (dsc/store/schema.py)
        for key, fs in sets.items():
            if len(fs.rows) == 0:
                continue
            src = stores[key]
            digest = src.read("digest", fs.rows) if src.has("digest") else np.zeros(len(fs.rows), "S16")
            split = key if key in ("train", "val", "test", "holdout") else key.split(":")[0]
            w.append(features=fs.features.numpy().astype(np.float32), labels=fs.labels.astype(np.int64),
                     split=[split] * len(fs.rows), set=[key] * len(fs.rows), row=fs.rows.astype(np.int64),
                     digest=digest)
        w.finalize()


def embed(backbone: Any, required: dict[str, tuple[Store, np.ndarray]], path: Path, *, cache_key: str,
          image_size: int, settings: ProbeSettings, data: Store, attrs: dict[str, Any], force: bool
          ) -> tuple[dict[str, FeatureSet], bool, int]:
    """Feature sets for ``required``: read from ``path`` when valid, computed (and the file rewritten) else.

    Returns (sets, reused, computed) where ``reused`` is True when nothing had to be computed and
    ``computed`` is the number of images encoded now.
    """
    cached = {} if force else _read_embeddings(path, cache_key)
    for key, (_store, rows) in required.items():  # empty sets (no val split, say) are never stored
        if len(rows) == 0:
            cached[key] = FeatureSet(key, torch.empty(0, backbone.feature_dim), np.empty(0, np.int64), rows)
    missing = [k for k in required if k not in cached]
    if not missing:
        log.info("reusing features from %s", path)
        return {k: cached[k] for k in required}, True, 0
    mean, std = normalisation(backbone.data_config)
    for key in missing:
        store, rows = required[key]
        feats = extract_features(backbone.module, store, rows, image_size=image_size, mean=mean, std=std,
                                 batch_size=settings.eval_batch_size, device=settings.device,
                                 description=f"features {key.split(':')[0]}", shard=True)
        labels = store.labels[rows] if store.has("labels") else np.full(len(rows), -1, np.int64)
        cached[key] = FeatureSet(key, feats, labels, rows)
    # keep earlier sets whose stores are still known (so toggling --with-synthetic does not thrash)
    stores = {k: required[k][0] for k in required}
    keep = {k: v for k, v in cached.items() if k in stores}
    if not any(len(v.rows) for v in keep.values()):
        raise InputError(f"{data.path} has no rows to embed", hint="check the store's splits")
    from dsc import parallel

    if parallel.is_main():
        _write_embeddings(path, keep, stores, data=data, attrs=attrs)
    return {k: cached[k] for k in required}, False, sum(len(required[k][1]) for k in missing)


# ------------------------------------------------------------------------------------------ the job
def _cat(sets: Sequence[FeatureSet]) -> tuple[torch.Tensor, torch.Tensor]:
    feats = torch.cat([s.features for s in sets]).float()
    labels = torch.from_numpy(np.concatenate([s.labels for s in sets]).astype(np.int64))
    return feats, labels


def probe(run_dir: Path | str, settings: ProbeSettings | None = None, *, ood: Sequence[Path | str] = (),
          sources: dict[str, str] | None = None, force: bool = False,
          recompute_features: bool = False, allow_incomplete: bool = False) -> ProbeResult:
    """Run `dsc probe` on a pretrain run directory; writes RUN/embeddings.h5 and RUN/probe/metrics.json.

    ``force`` overwrites earlier probe results; cached features are still reused when they match the
    checkpoint, DATA.h5, image size and device type. ``recompute_features`` rebuilds them regardless.
    A run whose training did not finish (run.json status other than "complete") is refused unless
    ``allow_incomplete``; the metrics record the training's state either way (``training``).
    Under ``accelerate launch``/``torchrun`` the embedding pass is sharded over the processes (batches by
    rank, gathered); the main process writes embeddings.h5, trains the probe and evaluates, and every
    process returns its result.
    """
    from dsc import parallel
    from dsc.outputs import OutputLock

    lock = OutputLock(Path(run_dir) / PROBE_DIR)  # RUN/probe.lock: one probe of a run at a time
    with parallel.session():
        result = None
        try:
            with parallel.together("probing"):
                if parallel.is_main() and Path(run_dir).is_dir():
                    lock.acquire()
                result = _probe(run_dir, settings, ood=ood, sources=sources, force=force,
                                recompute_features=recompute_features, allow_incomplete=allow_incomplete)
        finally:
            lock.release()
        if result is None:  # another process's share of the embedding pass is done; the main one wrote the rest
            path = Path(run_dir) / PROBE_DIR / "metrics.json"
            metrics = json.loads(path.read_text())
            result = ProbeResult(metrics, path, Path(run_dir) / EMBEDDINGS, metrics["embeddings"]["reused"], [])
        return result


def _probe(run_dir: Path | str, settings: ProbeSettings | None, *, ood: Sequence[Path | str],
           sources: dict[str, str] | None, force: bool, recompute_features: bool,
           allow_incomplete: bool = False) -> ProbeResult | None:
    from dsc import parallel
    from dsc.train.checkpoint import checkpoint_dir, load_encoder, read_checkpoint_info
    from dsc.train.run_dir import read_run_info

    settings = settings or ProbeSettings()
    run_dir = Path(run_dir)
    timings = Timings()
    t_start = time.perf_counter()
    run_info = read_run_info(run_dir)
    if run_info.get("command_name") not in (None, "pretrain"):
        raise InputError(f"{run_dir} is a {run_info.get('command_name')!r} run; `dsc probe` needs a pretrain run",
                         hint="baseline runs are evaluated by `dsc baseline` itself (RUN/metrics.json)")
    progress = training_progress(run_dir, run_info, "pretrain")
    if not progress.finished:
        if not allow_incomplete:
            raise InputError(f"{run_dir}: training {progress.reason()}",
                             hint="or pass --allow-incomplete to probe its checkpoint anyway; `dsc report` then "
                                  "marks the run as incomplete")
        log.warning("%s: training %s; probing its %r checkpoint anyway (--allow-incomplete)", run_dir,
                    progress.describe(), settings.checkpoint)
    out_dir = run_dir / PROBE_DIR
    metrics_path = out_dir / "metrics.json"
    if parallel.is_main():  # (the main process holds RUN/probe.lock; the others write nothing there)
        check_output(metrics_path if out_dir.is_dir() else out_dir, force=force)
    ckpt = read_checkpoint_info(run_dir, settings.checkpoint)
    data, synthetic, ood_stores = _open_run_inputs(run_dir, run_info, with_synthetic=settings.with_synthetic,
                                                   ood=[Path(p) for p in ood])
    classes = list(data.classes)
    if len(classes) < 2:
        raise InputError(f"{data.path} has {'1 class' if len(classes) == 1 else f'{len(classes)} classes'}; a "
                         "probe needs at least 2")
    run_settings = run_info.get("settings") or {}
    bb_info = run_info.get("backbone") or {}
    dev = resolve_device(settings.device)
    with timings.stage("load"), console.status(f"building {bb_info.get('name') or 'the encoder'} from the "
                                               f"{settings.checkpoint} checkpoint…"):
        backbone, _ = load_encoder(run_dir, settings.checkpoint, device=str(dev))
    image_size = int(run_settings.get("image_size") or (backbone.data_config.get("input_size") or [224])[-1])
    weights = checkpoint_dir(run_dir) / ckpt.get("files", {}).get("model", f"{settings.checkpoint}.safetensors")
    ckpt_hash = file_sha256(weights)[:16]
    cache_key = json_hash({"checkpoint": ckpt_hash, "data": data.fingerprint, "image_size": image_size,
                           "backbone": bb_info.get("name"), "device": dev.type, "version": FEATURES_VERSION})

    required = _required_sets(data, synthetic, ood_stores)
    emb_attrs = {
        "inputs": {"data": {"path": str(data.path), "fingerprint": data.fingerprint},
                   "checkpoint": {"which": settings.checkpoint, "sha256_16": ckpt_hash, "epoch": ckpt.get("epoch")},
                   "stores": {k: {"path": str(s.path), "fingerprint": s.fingerprint} for k, (s, _) in required.items()
                              if s is not data}},
        "extra": {"cache_key": cache_key, "backbone": bb_info.get("name"), "model_id": backbone.model_id,
                  "feature_dim": backbone.feature_dim, "image_size": image_size,
                  "data_config": {k: list(v) if isinstance(v, tuple) else v
                                  for k, v in backbone.data_config.items()},
                  "features": "encoder output before the projection head, not normalised"},
        "command": provenance()["command"], "versions": provenance()["versions"],
    }
    emb_path = run_dir / EMBEDDINGS
    with timings.stage("features"):
        sets, reused, encoded = embed(backbone, required, emb_path, cache_key=cache_key, image_size=image_size,
                             settings=settings, data=data, attrs=emb_attrs, force=recompute_features)
    if not parallel.is_main():
        return None

    train_sets = [sets["train"]] + [sets[f"synthetic:{s.fingerprint}"] for s in synthetic]
    train_x, train_y = _cat(train_sets)
    if len(train_y) == 0:
        raise InputError(f"{data.path} has no training rows", hint="check the store's splits")
    if (train_y < 0).any() or (train_y >= len(classes)).any():
        raise MismatchError("synthetic positives have labels outside the run's classes",
                            hint="use synthetic stores generated from this DATA.h5")
    val_x, val_y = _cat([sets["val"]])
    with timings.stage("probe"):
        fit = fit_linear(train_x, train_y, len(classes), solver="sgd", val_x=val_x, val_y=val_y,
                         epochs=settings.epochs, lr=settings.lr, batch_size=settings.batch_size,
                         weight_decay=settings.weight_decay, seed=settings.seed, device=settings.device)
    head, epoch, val_top1, history = fit.head, fit.epoch, fit.val_top1, fit.history

    features = {"train": sets["train"].features, "test": sets["test"].features}
    if "holdout" in sets:
        features["holdout"] = sets["holdout"].features
    for s in ood_stores:
        features[f"ood:{s.fingerprint}"] = sets[f"ood:{s.fingerprint}"].features
    opts = EvalOptions(image_size=image_size, batch_size=settings.eval_batch_size, device=settings.device,
                       seed=settings.seed, corruptions=() if not settings.corruptions else EvalOptions.corruptions,
                       severities=settings.severities, knn_k=settings.knn_k, features=features)
    with timings.stage("evaluate"):
        evaluation = evaluate_classifier(backbone, head, data, classes=classes, options=opts, ood_stores=ood_stores)

    out_dir.mkdir(exist_ok=True)
    _save_head(out_dir / "classifier.safetensors", head)
    atomic_write_text(out_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    run_timings = run_info.get("timings") or {}
    inputs = run_info.get("inputs") or {}
    normal_fps = [s.get("fingerprint") for s in inputs.get("synthetic") or []]
    ood_fps = [s.get("fingerprint") for s in inputs.get("negatives") or []]
    metrics: dict[str, Any] = {
        "schema": "dsc-metrics/1",
        "method": "supcon+probe",
        "run": run_dir.resolve().name,
        "seed": run_info.get("seed", run_settings.get("seed")),
        "backbone": bb_info.get("name") or run_settings.get("backbone"),
        "data": {"path": str(data.path), "fingerprint": data.fingerprint},
        "synthetic": {"normal": normal_fps, "ood": ood_fps,
                      "policy": run_info.get("synthetic_policy", run_settings.get("synthetic_policy"))
                      if normal_fps else None,
                      "ood_policy": run_info.get("ood_policy", run_settings.get("ood_policy")) if ood_fps else None,
                      "label": arm_label(normal_fps, ood_fps),
                      "probe_with_synthetic": settings.with_synthetic},
        "classes": classes,
        "val": {"top1": val_top1, "n": int(len(val_y))} if len(val_y) else {"n": 0},
    }
    for key in ("test", "robustness", "ood", "ood_stores"):
        if key in evaluation:
            metrics[key] = evaluation[key]
    timings["total"] = round(time.perf_counter() - t_start, 4)
    pretrain_time = sum(v for v in run_timings.values() if isinstance(v, (int, float)))
    metrics["timings"] = {**({"pretrain": round(pretrain_time, 4)} if run_timings else {}),
                          "probe": timings.get("probe", 0.0), "features": timings.get("features", 0.0),
                          "evaluate": timings.get("evaluate", 0.0), "total": timings["total"],
                          **{f"evaluate_{k}": v for k, v in evaluation.get("timings", {}).items() if k != "evaluate"}}
    metrics["selected_epoch"] = epoch
    metrics["training"] = progress.as_dict()
    metrics["checkpoint"] = {"which": settings.checkpoint, "epoch": ckpt.get("epoch"), "sha256_16": ckpt_hash}
    metrics["embeddings"] = {"path": str(emb_path), "reused": reused, "encoded": encoded}
    metrics["provenance"] = provenance(settings.model_dump(mode="json"), sources=sources or {},
                                       inputs={"run": str(run_dir), **emb_attrs["inputs"],
                                               "ood": [{"path": str(s.path), "fingerprint": s.fingerprint}
                                                       for s in ood_stores]})
    metrics["created"] = now()
    atomic_write_json(metrics_path, metrics)
    return ProbeResult(metrics, metrics_path, emb_path, reused, history)


def _save_head(path: Path, head: nn.Linear) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    save_file({f"classifier.{k}": v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
