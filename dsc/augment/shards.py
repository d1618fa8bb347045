"""The partial output: each finished batch is one shard in ``AUG.h5.shards/`` (written under a temporary name
and renamed, so complete or absent whatever kills the process); when every row exists the shards are merged
in row order into the store (``AUG.h5.partial``, then renamed)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dsc.augment.plan import Planned
from dsc.errors import MismatchError
from dsc.store.schema import REJECTION_COLUMNS, REJECTIONS

if TYPE_CHECKING:
    from dsc.augment.job import AugmentJob

log = logging.getLogger(__name__)

#: String columns (saved in shards as numpy arrays, written to the store as lists of str).
TEXT_COLUMNS = ("split", "strategy", "prompt", "scheduler", "ood_strategy")


def shard_dir(output: Path) -> Path:
    """Where finished batches wait until the store is assembled: ``AUG.h5.shards/``."""
    return output.with_name(output.name + ".shards")


def save_shard(folder: Path, start: int, columns: dict[str, np.ndarray], seconds: float,
               end: int | None = None) -> None:
    """One finished batch (plan rows ``start:end``), written under a temporary name and renamed: complete or
    absent, even on kill -9. With ``--filter`` it holds the accepted rows and the ``rej_*`` records."""
    end = start + len(columns["images"]) if end is None else end
    tmp = folder / f".rows-{start:08d}-{end:08d}.tmp.npz"
    with tmp.open("wb") as fh:
        np.savez(fh, seconds=np.float64(seconds), **columns)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / f"rows-{start:08d}-{end:08d}.npz")


def list_shards(folder: Path) -> list[tuple[int, int, Path]]:
    """The finished shards as (first row, stop row, path), in row order."""
    out = []
    for path in folder.glob("rows-*.npz"):
        _, a, b = path.stem.split("-")
        out.append((int(a), int(b), path))
    return sorted(out)


def batch_columns(job: AugmentJob, batch: list[Planned], images: np.ndarray, prompts: list[str]) -> dict[str, Any]:
    """The store columns of one generated batch (``labels``: the dominant class of a Diff-Mix image's soft target,
    ``mix_weight``: the weight of ``other_label`` in it, 0 for every unmixed image)."""
    s, n, role = job.s, len(batch), job.role
    return dict(
        images=images, labels=np.array([role.label(p.label) for p in batch], dtype=np.int64),
        is_ood=np.full(n, role.is_ood), source_label=np.array([p.source_label for p in batch], dtype=np.int64),
        source_index=np.array([p.source_index for p in batch], dtype=np.int64),
        variant=np.array([p.variant for p in batch], dtype=np.int32),
        other_label=np.array([p.other_label for p in batch], dtype=np.int64),
        mix_weight=np.array([p.mix_weight for p in batch], dtype=np.float32),
        split=np.array([s.split] * n), strategy=np.array([s.strategy] * n), prompt=np.array(prompts),
        strength=np.array([p.strength for p in batch], dtype=np.float32),
        guidance=np.full(n, s.guidance, dtype=np.float32), steps=np.full(n, s.steps, dtype=np.int32),
        scheduler=np.array([job.scheduler_label] * n), seed=np.array([p.seed for p in batch], dtype=np.int64),
        base_seed=np.full(n, s.seed, dtype=np.int64), ood_strategy=np.array([role.recorded_strategy] * n))


def apply_filter(job: AugmentJob, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Score a generated batch; keep the accepted rows (with ``filter_score``), add ``rej_*`` records. The score is
    the probability of the image's label (its source class for OOD images, the dominant class of a mix)."""
    scored = np.where(columns["is_ood"], columns["source_label"], columns["labels"])
    scores = job.filter(columns["images"], scored)
    keep = job.keep(scores)
    out = {k: v[keep] for k, v in columns.items()}
    out["filter_score"] = scores[keep].astype(np.float32)
    rejected = {**columns, "score": scores.astype(np.float32)}
    for name in REJECTION_COLUMNS:
        out[f"rej_{name}"] = rejected[name][~keep]
    return out


def summary(columns: dict[str, np.ndarray], class_names: list[str],
            rejected: np.ndarray | None = None) -> dict[str, dict[str, Any]]:
    """Per class: sources, images, OOD images, mean strength (with ``--filter`` also generated, rejected,
    acceptance)."""
    src, ood, strength, sidx = (columns[k] for k in ("source_label", "is_ood", "strength", "source_index"))
    out: dict[str, dict[str, Any]] = {}
    labels = set(src.tolist()) | (set(rejected.tolist()) if rejected is not None else set())
    for label in sorted(labels):
        sel = src == label
        row = {"sources": int(np.unique(sidx[sel & (sidx >= 0)]).size), "images": int(sel.sum()),
               "ood": int(ood[sel].sum()),
               "mean_strength": round(float(strength[sel].mean()), 4) if sel.any() else 0.0}
        if rejected is not None:  # --filter: images = accepted
            n_rej = int((rejected == label).sum())
            row.update(generated=row["images"] + n_rej, rejected=n_rej,
                       acceptance=round(row["images"] / (row["images"] + n_rej), 4))
        out[class_names[label]] = row
    return out


def _complete_shards(folder: Path, total: int) -> list[tuple[int, int, Path]]:
    """The shards, refused unless they cover rows ``0:total`` exactly once."""
    shards = list_shards(folder)
    expected = 0
    for a, b, path in shards:
        if a != expected:
            raise MismatchError(f"{folder} has overlapping or missing batches near row {expected} ({path.name})",
                                hint="pass --force to start over")
        expected = b
    if expected != total:
        raise MismatchError(f"{folder} covers {expected} of {total} images", hint="rerun with --resume")
    return shards


def assemble(job: AugmentJob, folder: Path, output: Path, force: bool, timings: dict[str, float]) -> dict:
    """Merge the shards, in row order, into the store (``.partial`` then renamed); return the summary."""
    from dsc.store import StoreWriter

    shards = _complete_shards(folder, len(job.plan))
    res = job.s.resolution
    keep: dict[str, list[np.ndarray]] = {k: [] for k in ("source_label", "is_ood", "strength", "source_index")}
    rejections: dict[str, list[np.ndarray]] = {k: [] for k in REJECTION_COLUMNS}
    filtered = job.filter is not None
    seconds = 0.0
    with StoreWriter(output, kind="synthetic", attrs=job.root_attrs(), force=force or output.exists()) as writer:
        writer.set_classes(job.class_names)
        writer.create_column("images", (res, res, 3), np.uint8, chunk_rows=1)
        writer.create_row_columns()  # the synthetic store's columns (dsc/store/schema.py)
        if filtered:
            writer.create_column("filter_score")
        for _, _, path in shards:
            with np.load(path) as z:
                cols = {k: z[k] for k in z.files if k != "seconds"}
                seconds += float(z["seconds"])
            for name in REJECTION_COLUMNS:
                if f"rej_{name}" in cols:
                    rejections[name].append(cols.pop(f"rej_{name}"))
            for name in TEXT_COLUMNS:
                cols[name] = [str(x) for x in cols[name]]
            if len(cols["images"]):
                writer.append(**cols)
            for k in keep:
                keep[k].append(np.asarray(cols[k]))
        rejected = {k: np.concatenate(v) for k, v in rejections.items()} if filtered else None
        out = summary({k: np.concatenate(v) for k, v in keep.items()}, job.class_names,
                      rejected["source_label"] if rejected is not None else None)
        if rejected is not None:
            _record_filter(job, writer, rejected, out, accepted=int(sum(len(v) for v in keep["is_ood"])))
        timings = {**timings, "generate_all_sessions": round(seconds, 4),
                   "images_per_second_all_sessions": round(len(job.plan) / seconds, 4) if seconds else 0.0}
        writer.set_attrs(timings=timings, summary=out)
        writer.finalize()
    return out


def _record_filter(job: AugmentJob, writer: Any, rejected: dict[str, np.ndarray],
                   per_class_summary: dict[str, dict[str, Any]], accepted: int) -> None:
    """``/rejections/`` and the root ``filter`` attribute with its counts (``--filter``)."""
    n_rejected = len(rejected["score"])
    writer.add_group(REJECTIONS, rejected, count=n_rejected)
    if n_rejected == len(job.plan):
        log.warning("the filter rejected %s (%s); the store has no samples",
                    "the only image" if len(job.plan) == 1 else f"all {len(job.plan)} images", job.filter_rule)
    per_class = {name: {"accepted": row["images"], "rejected": row["rejected"]}
                 for name, row in per_class_summary.items()}
    writer.set_attrs(filter={**job.filter_attrs(), "accepted": accepted, "rejected": n_rejected,
                             "per_class": per_class})
