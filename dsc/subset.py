"""`dsc subset`: turn a dataset plugin's records into a DATA.h5 store.

Steps: open the dataset plugin -> choose classes (super-class / tag filters, ``--class-names`` or N at
random, minimum size, held-out classes) -> cap images per class -> assign splits (the dataset's own, else
stratified and group-respecting) -> decode, convert to RGB, crop and resize in worker processes -> write
the store (temporary file, renamed when complete). See docs/commands/subset.md and docs/store-format.md.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dsc.console import count
from dsc.contracts import ClassInfo, DatasetPlugin, Record
from dsc.errors import ConfigError, InputError, PluginError
from dsc.images import Item, Job, Processed, process_many, worker_init
from dsc.outputs import check_output
from dsc.settings import SubsetSettings
from dsc.splits import SPLITS, group_split, leaking_groups, normalise_split

log = logging.getLogger(__name__)

#: Rows written per HDF5 append, items per task sent to a worker, tasks in flight per worker.
WRITE_BATCH = 64
TASK_ITEMS = 8
IN_FLIGHT = 4
#: Below this many images the pool is not worth starting.
MIN_PARALLEL = 48
MAX_LISTED_SKIPS = 200


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


@dataclass
class SubsetResult:
    """What `build_subset` wrote."""

    path: Path
    n: int
    fingerprint: str
    summary: dict[str, Any]
    timings: dict[str, float]


# ------------------------------------------------------------------------------------------- dataset
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
        if len(set(settings.class_names)) != len(settings.class_names):
            raise InputError("--class-names lists a class twice", hint="name each class once")
        unknown = [n for n in settings.class_names if n not in names]
        if unknown:
            raise InputError(f"unknown class {unknown[0]!r} in dataset {dataset!r}{_closest(unknown[0], names)}",
                             hint=f"it has {count(len(names), 'class', 'classes')}: {', '.join(names[:30])}"
                                  + (" ..." if len(names) > 30 else ""))
        pool_names = {c.name for c in pool}
        excluded = [n for n in settings.class_names if n not in pool_names]
        if excluded:
            raise InputError(f"class {excluded[0]!r} does not match the --super-class/--tag filter",
                             hint="drop the filter or the class")
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
    _assign_splits(plan, settings, split_seq)
    rank = {s: i for i, s in enumerate(SPLITS)}
    plan.rows.sort(key=lambda r: (rank[r.split], r.holdout_label >= 0, r.label, r.holdout_label, r.order))
    return plan


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


def _check_groups(plan: Plan, split_by_dsc: list[Row], settings: SubsetSettings) -> None:
    """Images without a group are each their own group: dsc cannot keep crops or views of one photo or
    object together. Warn once when dsc splits such images; with ``--require-groups`` refuse instead."""
    train_rows = [r for r in plan.rows if r.label >= 0]
    plan.trained = len(train_rows)
    plan.ungrouped = sum(r.record.group is None for r in train_rows)
    missing = sum(r.record.group is None for r in split_by_dsc)
    if not missing:
        return
    n = len(split_by_dsc)
    what = f"all {n}" if missing == n else f"{missing} of {n}"
    how = plan.groups_hint or "a dataset plugin gives groups in Record.group (docs/plugins.md)"
    if settings.require_groups:
        raise InputError(f"--require-groups: {what} images dsc splits have no group",
                         hint=f"give groups: {how}; or drop --require-groups to split those images one by one")
    log.warning("%s images dsc splits have no group, so each is its own group: several crops or views of one "
                "photo or object can land in train and test. Give groups: %s (or pass --require-groups to "
                "refuse instead)", what[0].upper() + what[1:], how)


def _has(n: int) -> str:
    """``1 class has`` / ``3 classes have``: the verb's number follows the count."""
    return "class has" if n == 1 else "classes have"


def grouping_text(ungrouped: int, total: int) -> str:
    """The summary's word on groups: grouped, ungrouped (each image its own group) or partly grouped."""
    if total and ungrouped == total:
        return "ungrouped: each image is its own group"
    if ungrouped:
        return (f"partly grouped: {ungrouped} of {count(total, 'image')} {'has' if ungrouped == 1 else 'have'} "
                "no group (each is its own group)")
    return "grouped"


def _assign_splits(plan: Plan, settings: SubsetSettings, seq: np.random.SeedSequence) -> None:
    train_rows = [r for r in plan.rows if r.label >= 0]
    given = [r for r in train_rows if r.split]
    plan.dataset_splits = bool(given)
    todo = [r for r in train_rows if not r.split]
    carve = not todo and bool(given) and not any(r.split == "val" for r in given) and settings.split[1] > 0
    _check_groups(plan, todo or ([r for r in given if r.split == "train"] if carve else []), settings)
    if todo:
        if given:
            log.warning("%d of %d records have no split from the dataset; splitting those by group",
                        len(todo), len(train_rows))
        for r, s in zip(todo, group_split([r.label for r in todo], [r.group for r in todo], settings.split, seq),
                        strict=True):
            r.split = s
    elif carve:
        # the dataset has no validation split: carve one out of its train split, by group
        pool = [r for r in given if r.split == "train"]
        f_train, f_val = settings.split[0], settings.split[1]
        fractions = (f_train / (f_train + f_val), f_val / (f_train + f_val), 0.0)
        for r, s in zip(pool, group_split([r.label for r in pool], [r.group for r in pool], fractions, seq),
                        strict=True):
            r.split = s
        plan.carved_val = True
        log.info("dataset has no val split: took %d train images (by group) for val",
                 sum(r.split == "val" for r in pool))
    leaks = leaking_groups([r.group for r in train_rows], [r.split for r in train_rows])
    plan.group_leaks = len(leaks)
    trained = {r.group for r in train_rows if r.split in ("train", "val")}
    shared = {r.group for r in plan.rows if r.label < 0} & trained
    plan.holdout_shared_groups = len(shared)
    if shared:
        log.info("%d groups have held-out-class images (test) and training-class images in train/val, e.g. %s "
                 "(other objects of one source photo)", len(shared), sorted(shared)[0])
    if leaks:
        log.warning("%d groups span several of the dataset's own splits (e.g. %s): near-duplicates may leak "
                    "from train into val/test", len(leaks), leaks[0])


# ------------------------------------------------------------------------------------------- decoding
@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while writing, so the partial output is removed and workers stop."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _workers(settings: SubsetSettings, n: int) -> int:
    if settings.workers:
        wanted = settings.workers
    else:
        try:
            wanted = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not on Linux
            wanted = os.cpu_count() or 1
    return 1 if n < MIN_PARALLEL else max(1, min(wanted, n // TASK_ITEMS))


def _chunks(items: list[Item], size: int) -> Iterator[list[Item]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def decode(items: list[Item], job: Job, workers: int) -> Iterator[Processed]:
    """Process items in order; with ``workers > 1`` in a process pool with a bounded window in flight."""
    if workers <= 1:
        for chunk in _chunks(items, TASK_ITEMS):
            yield from process_many(chunk, job)
        return
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    ctx = get_context("fork" if sys.platform.startswith("linux") else "spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=worker_init)
    try:
        pending: list[Any] = []
        chunks = _chunks(items, TASK_ITEMS)
        for chunk in chunks:
            pending.append(pool.submit(process_many, chunk, job))
            if len(pending) >= workers * IN_FLIGHT:
                break
        while pending:
            done = pending.pop(0).result()
            nxt = next(chunks, None)
            if nxt is not None:
                pending.append(pool.submit(process_many, nxt, job))
            yield from done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# -------------------------------------------------------------------------------------------- writing
def build_subset(settings: SubsetSettings, output: Path, *, force: bool = False,
                 sources: dict[str, str] | None = None, show_progress: bool = True,
                 on_plan: Callable[[Plan], None] | None = None, command: str | None = None) -> SubsetResult:
    """Make a DATA.h5 store at ``output`` from ``settings`` (see the module docstring)."""
    from dsc import interrupts
    from dsc.console import progress
    from dsc.provenance import Timings, command_line, provenance
    from dsc.registry import info as plugin_info
    from dsc.store import Precompressed, StoreWriter

    output = Path(output)
    check_output(output, force=force)
    settings = _one_class_choice(settings, sources or {})
    timings = Timings()
    start = time.perf_counter()
    with timings.stage("scan"):
        plugin = open_dataset(settings)
        plan = plan_subset(plugin, settings)
    if on_plan is not None:
        on_plan(plan)
    job = Job(resolution=settings.resolution, crop_to_object=settings.crop_to_object,
              dilation=settings.mask_dilation, pad=settings.pad, with_masks=plan.with_masks,
              on_missing_mask=settings.on_missing_mask)
    items = [Item(i, r.record.image, r.record.mask) for i, r in enumerate(plan.rows)]
    workers = _workers(settings, len(items))
    info = plugin_info("dataset", settings.dataset)
    plugin_attr = {"name": settings.dataset, "distribution": info.distribution, "version": info.version,
                   "class": type(plugin).__qualname__}
    r = settings.resolution
    written: list[Row] = []
    skips: list[dict[str, str]] = []
    with terminate_as_interrupt(), StoreWriter(output, kind="data", force=force) as writer:
        extra = {"holdout_names": [c.name for c in plan.holdout]} if plan.holdout else {}
        writer.set_classes([c.name for c in plan.classes], **extra)
        writer.create_column("images", (r, r, 3), np.uint8, chunk_rows=1)
        if plan.with_masks:
            writer.create_column("masks", (r, r), np.uint8, chunk_rows=1)
        writer.create_row_columns()  # labels, split, group, source, meta, holdout, holdout_label (schema.py)
        batch: list[tuple[Row, Processed]] = []

        def flush() -> None:
            if not batch:
                return
            cols: dict[str, Any] = {
                "images": Precompressed(p.image for _, p in batch),
                "digest": np.array([p.digest for _, p in batch], dtype="S16"),
                "labels": np.array([row.label for row, _ in batch], dtype=np.int64),
                "split": [row.split for row, _ in batch],
                "group": [row.group for row, _ in batch],
                "source": [row.record.source for row, _ in batch],
                "meta": [{**row.record.meta, **p.meta} for row, p in batch],
                "holdout": np.array([row.label < 0 for row, _ in batch], dtype=bool),
                "holdout_label": np.array([row.holdout_label for row, _ in batch], dtype=np.int64),
            }
            if plan.with_masks:
                cols["masks"] = Precompressed(p.mask for _, p in batch)
            writer.append(**cols)
            written.extend(row for row, _ in batch)
            batch.clear()

        with timings.stage("decode_write"):
            bar = progress(unit="img", transient=False) if show_progress else None
            results = decode(items, job, workers)
            try:
                if bar is not None:
                    bar.start()
                    task = bar.add_task("subset", total=len(items), status="")
                for p in results:
                    interrupts.check()  # stop at once after a Ctrl-C, even one a finaliser swallowed
                    row = plan.rows[p.index]
                    if p.reason is not None:
                        if p.mask_problem and settings.on_missing_mask == "error":
                            raise InputError(f"mask problem: {p.detail}",
                                             hint="fix the mask, or pass --on-missing-mask skip|full")
                        skips.append({"source": row.record.source, "class": _class_name(plan, row),
                                      "reason": p.reason, "detail": p.detail})
                    else:
                        batch.append((row, p))
                        if len(batch) >= WRITE_BATCH:
                            flush()
                    if bar is not None:
                        bar.update(task, advance=1, status=f"{len(skips)} skipped" if skips else "")
                flush()
            finally:
                results.close()
                if bar is not None:
                    bar.stop()
        if not written:
            raise InputError(f"none of the {len(items)} chosen images could be read "
                             f"({_reasons(skips)})", hint="check the dataset files")
        timings["total"] = round(time.perf_counter() - start, 4)
        summary = _summary(plan, written, skips, settings)
        summary["workers"] = workers
        summary["images_per_s"] = round(len(items) / max(timings["decode_write"], 1e-9), 1)
        prov = provenance(settings.model_dump(mode="json"), sources=sources or {}, timings=dict(timings))
        writer.set_attrs(
            created=prov["created"], command=command or command_line(), versions=prov["versions"], extra={"host": prov["host"]},
            settings=prov["settings"], sources=prov["sources"], plugin=plugin_attr,
            plugin_options=plugin.options.model_dump(mode="json"), timings=dict(timings),
            summary=_fit_summary(summary),
            class_info=[{"name": c.name, "super_classes": list(c.super_classes), "tags": list(c.tags),
                         "description": c.description, "holdout": c in plan.holdout}
                        for c in plan.classes + plan.holdout],
            resolution=r, crop_to_object=settings.crop_to_object, seed=settings.seed,
        )
        fingerprint = writer.fingerprint()
        writer.finalize()
    _warn_empty_splits(summary)
    return SubsetResult(output, len(written), fingerprint, summary, dict(timings))


def _layer(source: str) -> int:
    order = ("default", "config file", "environment", "command line")
    return next((i for i, name in enumerate(order) if source.startswith(name)), 0)


def _one_class_choice(settings: SubsetSettings, sources: dict[str, str]) -> SubsetSettings:
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


def _class_name(plan: Plan, row: Row) -> str:
    return plan.holdout[row.holdout_label].name if row.label < 0 else plan.classes[row.label].name


def _reasons(skips: list[dict[str, str]]) -> str:
    counts = Counter(s["reason"] for s in skips)
    return ", ".join(f"{n} {reason}" for reason, n in counts.most_common()) or "none skipped"


def _summary(plan: Plan, written: list[Row], skips: list[dict[str, str]],
             settings: SubsetSettings) -> dict[str, Any]:
    """Per class and split counts, skipped images by reason, choices made (stored in the file's attrs)."""
    per: dict[tuple[int, int], Counter] = defaultdict(Counter)
    for row in written:
        per[(row.label, row.holdout_label)][row.split] += 1
    skipped_per = Counter(s["class"] for s in skips)

    def entry(name: str, key: tuple[int, int]) -> dict[str, Any]:
        c = per[key]
        return {"name": name, **{s: c[s] for s in SPLITS}, "total": sum(c.values()),
                "skipped": skipped_per[name], "capped": plan.capped.get(name, 0)}

    classes = [entry(c.name, (i, -1)) for i, c in enumerate(plan.classes)]
    holdout = [entry(c.name, (-1, i)) for i, c in enumerate(plan.holdout)]
    return {
        "n": len(written),
        "splits": {s: sum(1 for r in written if r.split == s and r.label >= 0) for s in SPLITS},
        "holdout": sum(1 for r in written if r.label < 0),
        "classes": classes, "holdout_classes": holdout,
        "skipped": {"total": len(skips), "by_reason": dict(Counter(s["reason"] for s in skips)),
                    "files": skips[:MAX_LISTED_SKIPS], "listed": min(len(skips), MAX_LISTED_SKIPS)},
        "skipped_classes": plan.skipped_classes,
        "scanned": {"classes_listed": plan.listed_classes, "classes": plan.scanned_classes,
                    "records": plan.scanned_records},
        "split_source": _split_source(plan),
        "grouping": grouping_text(plan.ungrouped, plan.trained),
        "group_leaks": plan.group_leaks,
        "holdout_shared_groups": plan.holdout_shared_groups,
        "masks": plan.with_masks,
        "resolution": settings.resolution,
    }


def _split_source(plan: Plan) -> str:
    """Where the splits come from, and whether groups kept photos/objects together where dsc split."""
    grouping = grouping_text(plan.ungrouped, plan.trained)
    by = "by group" if grouping == "grouped" else grouping
    if not plan.dataset_splits:
        return f"stratified by class, {by}" if grouping == "grouped" else f"stratified by class; {by}"
    return "dataset" + (f" (val carved from train, {by})" if plan.carved_val else "")


def _fit_summary(summary: dict[str, Any], limit: int = 55_000) -> dict[str, Any]:
    """Shorten the listed skipped files until the summary fits in one HDF5 attribute."""
    import json

    out = dict(summary)
    skipped = dict(out["skipped"])
    while len(json.dumps(out, default=str).encode()) > limit and skipped["files"]:
        skipped["files"] = skipped["files"][: len(skipped["files"]) // 2]
        skipped["listed"] = len(skipped["files"])
        out["skipped"] = skipped
    return out


def _warn_empty_splits(summary: dict[str, Any]) -> None:
    empty = [c["name"] for c in summary["classes"] if c["train"] == 0]
    if empty:
        log.warning("%s no training images: %s", "1 class has" if len(empty) == 1 else f"{len(empty)} classes have",
                    ", ".join(empty[:10]))
