"""`dsc subset`'s writer: plan, decode in worker processes, write the DATA.h5 store (a temporary file,
renamed when complete) with its provenance and summary. See docs/commands/subset.md and docs/store-format.md.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsc.contracts import DatasetPlugin
from dsc.errors import InputError
from dsc.settings import SubsetSettings
from dsc.store.schema import SPLITS
from dsc.subset.decode import Item, Job, Processed, decode_items, terminate_as_interrupt, workers_for
from dsc.subset.plan import Plan, Row, one_class_choice, open_dataset, plan_subset
from dsc.subset.splits import grouping_text

if TYPE_CHECKING:
    from dsc.jobs import Job as OutputJob

log = logging.getLogger(__name__)

#: Rows written per HDF5 append.
WRITE_BATCH = 64
MAX_LISTED_SKIPS = 200


@dataclass
class SubsetResult:
    """What `build_subset` wrote."""

    path: Path
    n: int
    fingerprint: str
    summary: dict[str, Any]
    timings: dict[str, float]


def build_subset(settings: SubsetSettings, output: Path, *, force: bool = False,
                 sources: dict[str, str] | None = None, show_progress: bool = True,
                 on_plan: Callable[[Plan], None] | None = None, command: str | None = None) -> SubsetResult:
    """Make a DATA.h5 store at ``output`` from ``settings`` (see dsc.subset)."""
    from dsc.jobs import Job as OutputJob  # (dsc.subset.decode.Job is one image's decoding job)

    # OUTPUT.lock and the output check: dsc/jobs.py; OUTPUT.partial and its commit: the store writer
    with OutputJob("subset", output, force=force, resumable=False) as job:
        job.check()
        return _build(settings, Path(output), job, force=force, sources=sources, show_progress=show_progress,
                      on_plan=on_plan, command=command)


def _build(settings: SubsetSettings, output: Path, output_job: OutputJob, *, force: bool, sources: dict[str, str] | None,
           show_progress: bool, on_plan: Callable[[Plan], None] | None, command: str | None) -> SubsetResult:
    from dsc.provenance import Timings
    from dsc.store import StoreWriter

    settings = one_class_choice(settings, sources or {})
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
    workers = workers_for(settings, len(items))
    plugin_attr = _plugin_attr(settings, plugin)
    with terminate_as_interrupt(), StoreWriter(output, kind="data", force=force, lock=output_job.lock()) as writer:
        _create_columns(writer, plan, settings.resolution)
        with timings.stage("decode_write"):
            written, skips = _decode_write(writer, plan, items, job, workers, settings, show_progress)
        if not written:
            raise InputError(f"none of the {len(items)} chosen images could be read "
                             f"({_reasons(skips)})", hint="check the dataset files")
        timings["total"] = round(time.perf_counter() - start, 4)
        summary = _summary(plan, written, skips, settings)
        summary["workers"] = workers
        summary["images_per_s"] = round(len(items) / max(timings["decode_write"], 1e-9), 1)
        _set_attrs(writer, plan, settings, plugin, plugin_attr, summary=summary, timings=dict(timings),
                   sources=sources or {}, command=command)
        fingerprint = writer.fingerprint()
        writer.finalize()
    _warn_empty_splits(summary)
    return SubsetResult(output, len(written), fingerprint, summary, dict(timings))


def _plugin_attr(settings: SubsetSettings, plugin: DatasetPlugin) -> dict[str, str]:
    """The dataset plugin recorded in the store: name, distribution, version and class."""
    from dsc.registry import info as plugin_info

    info = plugin_info("dataset", settings.dataset)
    return {"name": settings.dataset, "distribution": info.distribution, "version": info.version,
            "class": type(plugin).__qualname__}


def _create_columns(writer: Any, plan: Plan, r: int) -> None:
    """Classes, the image (and mask) columns and the per-row columns of the schema."""
    extra = {"holdout_names": [c.name for c in plan.holdout]} if plan.holdout else {}
    writer.set_classes([c.name for c in plan.classes], **extra)
    writer.create_column("images", (r, r, 3), np.uint8, chunk_rows=1)
    if plan.with_masks:
        writer.create_column("masks", (r, r), np.uint8, chunk_rows=1)
    writer.create_row_columns()  # labels, split, group, source, meta, holdout, holdout_label (schema.py)


def _columns(batch: list[tuple[Row, Processed]], with_masks: bool) -> dict[str, Any]:
    """One append's worth of rows, column by column."""
    from dsc.store import Precompressed

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
    if with_masks:
        cols["masks"] = Precompressed(p.mask for _, p in batch)
    return cols


def _decode_write(writer: Any, plan: Plan, items: list[Item], job: Job, workers: int, settings: SubsetSettings,
                  show_progress: bool) -> tuple[list[Row], list[dict[str, str]]]:
    """Decode every item and append the good ones in batches; returns the rows written and the skips."""
    from dsc import interrupts
    from dsc.console import progress

    written: list[Row] = []
    skips: list[dict[str, str]] = []
    batch: list[tuple[Row, Processed]] = []

    def flush() -> None:
        if not batch:
            return
        writer.append(**_columns(batch, plan.with_masks))
        written.extend(row for row, _ in batch)
        batch.clear()

    bar = progress(unit="img", transient=False) if show_progress else None
    results = decode_items(items, job, workers)
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
    return written, skips


def _set_attrs(writer: Any, plan: Plan, settings: SubsetSettings, plugin: DatasetPlugin,
               plugin_attr: dict[str, str], *, summary: dict[str, Any], timings: dict[str, float],
               sources: dict[str, str], command: str | None) -> None:
    """The store's provenance, plugin, summary and class information."""
    from dsc.provenance import command_line, provenance

    prov = provenance(settings.model_dump(mode="json"), sources=sources, timings=dict(timings))
    writer.set_attrs(
        created=prov["created"], command=command or command_line(), versions=prov["versions"], extra={"host": prov["host"]},
        settings=prov["settings"], sources=prov["sources"], plugin=plugin_attr,
        plugin_options=plugin.options.model_dump(mode="json"), timings=timings,
        summary=_fit_summary(summary),
        class_info=[{"name": c.name, "super_classes": list(c.super_classes), "tags": list(c.tags),
                     "description": c.description, "holdout": c in plan.holdout}
                    for c in plan.classes + plan.holdout],
        resolution=settings.resolution, crop_to_object=settings.crop_to_object, seed=settings.seed,
    )


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
