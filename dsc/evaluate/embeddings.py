"""The embedding cache: a run's features computed once into ``RUN/embeddings.h5``.

`dsc probe` embeds train/val/test (and held-out, synthetic and OOD) rows with the run's frozen encoder and
keeps them here; the file is reused while its ``cache_key`` (checkpoint, DATA.h5, image size, backbone,
device type and `FEATURES_VERSION`) is unchanged. `dsc report`'s embedding map reads the test rows.
See docs/commands/probe.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dsc.errors import InputError
from dsc.evaluate.features import extract_features, normalisation
from dsc.evaluate.suite import holdout_indices, in_distribution_indices, ood_indices
from dsc.provenance import json_hash, provenance
from dsc.settings import ProbeSettings
from dsc.store import Store, StoreWriter, open_store

log = logging.getLogger(__name__)

EMBEDDINGS = "embeddings.h5"
#: Bump when feature extraction changes (invalidates every cached embeddings.h5).
FEATURES_VERSION = 1


@dataclass
class FeatureSet:
    """Features of rows of one store (``key``: "train", "val", "test", "holdout", "synthetic:<fp>", "ood:<fp>")."""

    key: str
    features: torch.Tensor
    labels: np.ndarray
    rows: np.ndarray


def make_cache_key(*, checkpoint: str, data: Store, image_size: int, backbone: str | None, device: str) -> str:
    """What the cached features depend on: a file made for another key is recomputed."""
    return json_hash({"checkpoint": checkpoint, "data": data.fingerprint, "image_size": image_size,
                      "backbone": backbone, "device": device, "version": FEATURES_VERSION})


def normal_rows(store: Store) -> np.ndarray:
    """In-distribution rows of a synthetic store (positives)."""
    return np.flatnonzero(~store.is_ood)


def required_sets(data: Store, synthetic: Sequence[Store], ood_stores: Sequence[Store]
                   ) -> dict[str, tuple[Store, np.ndarray]]:
    """The feature sets a probe needs: each key with its store and rows."""
    sets: dict[str, tuple[Store, np.ndarray]] = {
        split: (data, in_distribution_indices(data, split)) for split in ("train", "val", "test")}
    hold = holdout_indices(data)
    if len(hold):
        sets["holdout"] = (data, hold)
    for s in synthetic:
        sets[f"synthetic:{s.fingerprint}"] = (s, normal_rows(s))
    for s in ood_stores:
        sets[f"ood:{s.fingerprint}"] = (s, ood_indices(s))
    return sets


def embedding_attrs(required: dict[str, tuple[Store, np.ndarray]], backbone: Any, *, data: Store, key: str,
                    checkpoint: dict[str, Any], backbone_name: str | None, image_size: int) -> dict[str, Any]:
    """The attributes of embeddings.h5: its inputs (DATA.h5, checkpoint, other stores) and how it was made."""
    return {
        "inputs": {"data": {"path": str(data.path), "fingerprint": data.fingerprint},
                   "checkpoint": checkpoint,
                   "stores": {k: {"path": str(s.path), "fingerprint": s.fingerprint} for k, (s, _) in required.items()
                              if s is not data}},
        "extra": {"cache_key": key, "backbone": backbone_name, "model_id": backbone.model_id,
                  "feature_dim": backbone.feature_dim, "image_size": image_size,
                  "data_config": {k: list(v) if isinstance(v, tuple) else v
                                  for k, v in backbone.data_config.items()},
                  "features": "encoder output before the projection head, not normalised"},
        "command": provenance()["command"], "versions": provenance()["versions"],
    }


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
