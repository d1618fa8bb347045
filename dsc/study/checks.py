"""Every input of every planned run, opened and checked before anything runs (``dsc study``, --dry-run too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dsc.errors import InputError
from dsc.study.spec import Study


def check_inputs(study: Study, pending: set[Path] | frozenset[Path] = frozenset()) -> None:
    """Open and check every input of every planned run before anything runs (``--dry-run`` too): the data
    and each arm's synthetic and OOD stores (kind, source, overlap, rows of their role), every run's
    backbone and checkpoint, and the evaluation-only OOD stores the probe will read. Images are not read.
    ``pending``: stores the study has yet to build (checked again once built)."""
    from dsc.backbones import check_backbone
    from dsc.data.stores import open_inputs

    arms: set[tuple[tuple[Path, ...], tuple[Path, ...]]] = set()
    backbones: set[tuple[str, bool]] = set()
    for r in study.runs:
        arm = (tuple(p for p in r.synthetic if p not in pending), tuple(p for p in r.negatives if p not in pending))
        if arm not in arms:
            arms.add(arm)
            inputs = open_inputs(r.data, list(arm[0]), list(arm[1]))
            for store in inputs.synthetic:
                _require_rows(store, ood=False)
            for store in inputs.negatives:
                _require_rows(store, ood=True)
        checkpoint = r.settings.checkpoint
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise InputError(f"checkpoint {checkpoint} of {r.name} does not exist",
                             hint="fix checkpoint = ... in the study file")
        backbone = (r.settings.backbone, bool(r.settings.pretrained and checkpoint is None))
        if backbone not in backbones:
            backbones.add(backbone)
            check_backbone(backbone[0], pretrained=backbone[1])
    if "supcon" in study.spec.methods and study.spec.data.is_file():
        _check_eval_ood(study.spec.data, [p for p in study.spec.eval_ood if p not in pending])


def _require_rows(store: Any, *, ood: bool) -> None:
    """A store given as synthetic positives (negatives) has in-distribution (OOD) rows."""
    is_ood = store.is_ood
    if not (is_ood if ood else ~is_ood).any():
        key = "ood" if ood else "synthetic"
        raise InputError(f"study {key} store {store.path} has no {'OOD' if ood else 'in-distribution'} rows",
                         hint="list OOD stores (augment --mode ood) in ood = [...] and normal ones in "
                              "synthetic = [...]")


def _check_eval_ood(data_path: Path, paths: list[Path]) -> None:
    """The stores of ``eval_ood``: made from this DATA.h5's held-out images, with OOD rows (as the probe needs)."""
    from dsc.evaluate.suite import ood_indices
    from dsc.store import open_store
    from dsc.store.reader import check_same_source

    data = open_store(data_path, kind="data")
    for path in paths:
        store = open_store(path, kind="synthetic")
        check_same_source(data, store, training=False)
        if not store.evaluation_only:
            raise InputError(f"study eval_ood store {path} was generated from training images, not held-out ones",
                             hint="make test OOD data with `dsc augment --mode ood --split test`, or list the "
                                  "store in ood = [...] to train with it")
        if len(ood_indices(store)) == 0:
            raise InputError(f"study eval_ood store {path} has no OOD rows (is_ood)",
                             hint="list a store made with `dsc augment --mode ood --split test`")
