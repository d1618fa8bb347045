"""`dsc subset`'s plan: open the dataset plugin, choose the classes and the records, assign labels, splits
and groups. Nothing here reads pixels (that is dsc.subset.decode).

Classes: super-class / tag filters, ``--class-names`` or N at random, minimum size, held-out classes; then
at most ``--max-per-class`` images per class; then the splits (dsc.subset.splits). Settings from different
layers that both choose classes are reconciled by `one_class_choice`.
"""

from __future__ import annotations

import difflib
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dsc.console import count
from dsc.contracts import ClassInfo, DatasetPlugin, Record
from dsc.errors import ConfigError, InputError, PluginError
from dsc.settings import SubsetSettings
from dsc.store.schema import SPLITS
from dsc.subset.splits import assign_splits, normalise_split

log = logging.getLogger(__name__)


@dataclass
class Row:
    """One planned sample: the record, its label (-1 for held-out classes), split and group."""

    record: Record
    label: int
    split: str
    group: str
    holdout_label: int = -1
    order: int = 0

@dataclass
class Plan:
    """Everything decided before any pixel is decoded."""

    classes: list[ClassInfo]
    holdout: list[ClassInfo]
    rows: list[Row]
    skipped_classes: list[dict[str, Any]] = field(default_factory=list)
    dataset_splits: bool = False
    carved_val: bool = False
    group_leaks: int = 0
    holdout_shared_groups: int = 0
    scanned_classes: int = 0
    listed_classes: int = 0
    scanned_records: int = 0
    with_masks: bool = False
    capped: dict[str, int] = field(default_factory=dict)
    groups_hint: str = ""      # how this dataset takes group information (DatasetPlugin.groups_hint)
    ungrouped: int = 0         # training-class images without a group (each is its own group)
    trained: int = 0           # training-class images


def open_dataset(settings: SubsetSettings) -> DatasetPlugin:
    """Instantiate the dataset plugin with its validated options (``--root``/``--masks`` included)."""
    from dsc import registry

    raw = dict(settings.options)
    for key in ("root", "masks"):
        value = getattr(settings, key)
        if value is not None:
            raw[key] = value
        path = raw.get(key)
        if path is not None and not Path(path).exists():
            what = "dataset root" if key == "root" else "mask folder"
            raise InputError(f"{what} {path} does not exist", hint=f"check --{key}")
    return registry.create("dataset", settings.dataset, raw)  # bad options: one line listing the valid ones

def _closest(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""

def _filter(infos: list[ClassInfo], settings: SubsetSettings, dataset: str) -> list[ClassInfo]:
    """Classes passing the super-class and tag filters (errors list what exists)."""
    for attr, value, label in (("super_classes", settings.super_class, "super-class"),
                               ("tags", settings.tag, "tag")):
        if value is None:
            continue
        available = sorted({v for info in infos for v in getattr(info, attr)})
        if value not in available:
            listed = ", ".join(available) if available else "none"
            raise InputError(f"unknown {label} {value!r} in dataset {dataset!r}{_closest(value, available)}",
                             hint=f"available: {listed}")
        infos = [info for info in infos if value in getattr(info, attr)]
    return infos

class _Scanner:
    """Reads records class by class, so that choosing N of many classes reads only what it needs."""

    def __init__(self, plugin: DatasetPlugin, min_per_class: int) -> None:
        self.plugin = plugin
        self.min = min_per_class
        self.records: dict[str, list[Record]] = {}
        self.small: list[dict[str, Any]] = []
        self.n_records = 0

    def scan(self, names: Sequence[str]) -> None:
        todo = [n for n in names if n not in self.records]
        if not todo:
            return
        wanted = set(todo)
        for name in todo:
            self.records[name] = []
        for rec in self.plugin.records(todo):
            self.n_records += 1
            if rec.label in wanted:
                self.records[rec.label].append(rec)
        for name in todo:
            if len(self.records[name]) < self.min:
                self.small.append({"name": name, "images": len(self.records[name]),
                                   "reason": f"fewer than {count(self.min, 'image')}"})

    def ok(self, name: str) -> bool:
        self.scan([name])
        return len(self.records[name]) >= self.min

def _choose(pool: list[ClassInfo], scanner: _Scanner, settings: SubsetSettings,
            rng: np.random.Generator) -> tuple[list[ClassInfo], list[ClassInfo]]:
    """Training and held-out classes; classes below --min-per-class are skipped (warning, count).

    The pool is shuffled once with the seed; N training then K held-out classes are taken from the front,
    skipping small classes. Only the classes looked at are read, and the training classes do not depend on
    K. Without --classes every class is read, K are held out at random and the rest are trained on.
    """
    k, m = settings.holdout_classes, settings.min_per_class
    perm = [pool[i] for i in rng.permutation(len(pool))]
    if settings.class_names is not None:
        named = {c.name: c for c in pool}
        scanner.scan(settings.class_names)
        train = [named[n] for n in settings.class_names if scanner.ok(n)]
        holdout = [c for c in perm if c.name not in set(settings.class_names)]
        holdout = _take(holdout, k, scanner)
        if len(holdout) < k:
            raise InputError(f"asked for {count(k, 'held-out class', 'held-out classes')} but only "
                             f"{len(holdout)} other {_has(len(holdout))} at least {count(m, 'image')}",
                             hint="lower --holdout-classes or --min-per-class")
    elif settings.classes is not None:
        n = settings.classes
        chosen = _take(perm, n + k, scanner)
        if len(chosen) < n + k:
            asked = count(n, "class", "classes") + (f" + {k} held-out" if k else "")
            raise InputError(f"asked for {asked} but only {len(chosen)} of {count(len(pool), 'class', 'classes')} "
                             f"{'has' if len(chosen) == 1 else 'have'} at least {count(m, 'image')}",
                             hint="ask for fewer classes, lower --min-per-class or drop filters")
        train, holdout = chosen[:n], chosen[n:]
    else:
        scanner.scan([c.name for c in pool])
        eligible = [c for c in perm if scanner.ok(c.name)]
        if eligible and k >= len(eligible):
            raise InputError(f"asked for {count(k, 'held-out class', 'held-out classes')} but only "
                             f"{len(eligible)} {_has(len(eligible))} at least {count(m, 'image')}",
                             hint="lower --holdout-classes (some classes must remain to train)")
        holdout, train = eligible[:k], eligible[k:]
    if scanner.small:
        small = scanner.small
        listed = ", ".join(f"{c['name']} ({c['images']})" for c in small[:10]) + (" ..." if len(small) > 10 else "")
        log.warning("skipped %s with fewer than %s (--min-per-class): %s",
                    count(len(small), "class", "classes"), count(m, "image"), listed)
    if not train:
        raise InputError(f"no class has at least {count(m, 'image')} ({count(len(scanner.records), 'class', 'classes')} "
                         f"read, {count(scanner.n_records, 'image')})", hint="lower --min-per-class or check the "
                         "dataset root")
    rank = {c.name: i for i, c in enumerate(pool)}
    if settings.class_names is None:
        train.sort(key=lambda c: rank[c.name])
    holdout.sort(key=lambda c: rank[c.name])
    return train, holdout

def _has(n: int) -> str:
    """``1 class has`` / ``3 classes have``: the verb's number follows the count."""
    return "class has" if n == 1 else "classes have"

def _take(candidates: list[ClassInfo], count: int, scanner: _Scanner) -> list[ClassInfo]:
    """The first ``count`` candidates with enough images (reading classes one at a time)."""
    out: list[ClassInfo] = []
    for c in candidates:
        if len(out) == count:
            break
        if scanner.ok(c.name):
            out.append(c)
    return out

def _cap(records: list[Record], limit: int, rng: np.random.Generator) -> list[Record]:
    """At most ``limit`` records, chosen at random, keeping each split's share (largest remainder)."""
    if len(records) <= limit:
        return records
    by_split: dict[str | None, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_split[r.split].append(i)
    keys = sorted(by_split, key=lambda s: (s is None, str(s)))
    exact = {s: limit * len(by_split[s]) / len(records) for s in keys}
    quota = {s: int(exact[s]) for s in keys}
    for s in sorted(keys, key=lambda s: -(exact[s] - quota[s]))[:limit - sum(quota.values())]:
        quota[s] += 1
    chosen: list[int] = []
    for s in keys:
        idx = by_split[s]
        chosen.extend(idx[j] for j in rng.choice(len(idx), size=quota[s], replace=False))
    return [records[i] for i in sorted(chosen)]


def plan_subset(plugin: DatasetPlugin, settings: SubsetSettings) -> Plan:
    """Choose classes and records and assign labels, splits and groups (no pixels are read)."""
    if settings.classes is not None and settings.class_names is not None:
        raise ConfigError("--classes and --class-names exclude each other", hint="pass only one of them")
    dataset = settings.dataset
    infos = list(plugin.classes())
    if not infos:
        raise InputError(f"dataset {dataset!r} has no classes", hint="check --root")
    names = [c.name for c in infos]
    if len(set(names)) != len(names):
        dup = sorted(n for n, k in Counter(names).items() if k > 1)
        raise PluginError(f"dataset plugin {dataset!r} lists classes twice: {', '.join(dup[:5])}")
    pool = _filter(infos, settings, dataset)
    if settings.class_names is not None:
        _check_class_names(settings.class_names, names, pool, dataset)
    with_masks = plugin.has_masks()
    if settings.crop_to_object and not with_masks:
        raise InputError(f"--crop-to-object needs masks, but dataset {dataset!r} has none",
                         hint="pass --masks DIR (for datasets with a mask tree) or drop --crop-to-object")
    # independent streams: changing --max-per-class does not change which classes are chosen, etc.
    class_seq, cap_seq, split_seq = np.random.SeedSequence(settings.seed).spawn(3)
    class_rng, cap_rng = np.random.default_rng(class_seq), np.random.default_rng(cap_seq)

    scanner = _Scanner(plugin, settings.min_per_class)
    train, holdout = _choose(pool, scanner, settings, class_rng)
    by_class = scanner.records

    capped: dict[str, int] = {}
    if settings.max_per_class is not None:
        for c in train + holdout:
            before = len(by_class[c.name])
            by_class[c.name] = _cap(by_class[c.name], settings.max_per_class, cap_rng)
            if len(by_class[c.name]) < before:
                capped[c.name] = before - len(by_class[c.name])

    rows: list[Row] = []
    order = 0
    for label, c in enumerate(train):
        for rec in by_class[c.name]:
            split = normalise_split(rec.split, dataset)
            rows.append(Row(rec, label, split or "", rec.group or f"sample:{rec.source}", order=order))
            order += 1
    for hl, c in enumerate(holdout):
        for rec in by_class[c.name]:
            rows.append(Row(rec, -1, "test", rec.group or f"sample:{rec.source}", holdout_label=hl, order=order))
            order += 1
    if with_masks:
        _check_masks(rows, settings)

    plan = Plan(train, holdout, rows, scanner.small, scanned_classes=len(scanner.records),
                listed_classes=len(pool), scanned_records=scanner.n_records,
                with_masks=with_masks, capped=capped, groups_hint=plugin.groups_hint)
    assign_splits(plan, settings, split_seq)
    rank = {s: i for i, s in enumerate(SPLITS)}
    plan.rows.sort(key=lambda r: (rank[r.split], r.holdout_label >= 0, r.label, r.holdout_label, r.order))
    return plan


def _check_class_names(class_names: Sequence[str], names: Sequence[str], pool: list[ClassInfo], dataset: str) -> None:
    """``--class-names``: each named once, known to the dataset and passing the filters."""
    if len(set(class_names)) != len(class_names):
        raise InputError("--class-names lists a class twice", hint="name each class once")
    unknown = [n for n in class_names if n not in names]
    if unknown:
        raise InputError(f"unknown class {unknown[0]!r} in dataset {dataset!r}{_closest(unknown[0], names)}",
                         hint=f"it has {count(len(names), 'class', 'classes')}: {', '.join(names[:30])}"
                              + (" ..." if len(names) > 30 else ""))
    pool_names = {c.name for c in pool}
    excluded = [n for n in class_names if n not in pool_names]
    if excluded:
        raise InputError(f"class {excluded[0]!r} does not match the --super-class/--tag filter",
                         hint="drop the filter or the class")


def _check_masks(rows: list[Row], settings: SubsetSettings) -> None:
    """Missing mask files are found before decoding starts (policy: --on-missing-mask)."""
    missing = [r for r in rows if r.record.mask is None or
               (not isinstance(r.record.mask, np.ndarray) and not Path(r.record.mask).is_file())]
    if not missing:
        return
    if settings.on_missing_mask == "error":
        examples = ", ".join(str(r.record.mask or f"(none for {r.record.source})") for r in missing[:3])
        raise InputError(f"{len(missing)} of {count(len(rows), 'image')} {'has' if len(missing) == 1 else 'have'} "
                         f"no mask file, e.g. {examples}",
                         hint="check --masks, or pass --on-missing-mask skip (drop those images) or "
                              "--on-missing-mask full (use the whole image as mask)")
    log.warning("%s no mask file; --on-missing-mask %s", "1 image has" if len(missing) == 1 else
                f"{len(missing)} images have", settings.on_missing_mask)

def _layer(source: str) -> int:
    order = ("default", "config file", "environment", "command line")
    return next((i for i, name in enumerate(order) if source.startswith(name)), 0)


def one_class_choice(settings: SubsetSettings, sources: dict[str, str]) -> SubsetSettings:
    """``classes`` and ``class_names`` from different layers: the higher layer wins (e.g. --class-names on
    the command line over ``classes = 6`` in dsc.toml). From the same layer they are an error (later)."""
    if settings.classes is None or settings.class_names is None:
        return settings
    a = _layer(sources.get("subset.classes", "default"))
    b = _layer(sources.get("subset.class_names", "default"))
    if a == b:
        return settings
    drop = "classes" if b > a else "class_names"
    log.info("ignoring subset.%s from a lower settings layer", drop)
    return settings.model_copy(update={drop: None})
