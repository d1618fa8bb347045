"""``dsc augment --preview N``: a few real images beside their variants, one labelled figure, no store.
Source-free (text-to-image) images have no real image: each row shows up to ``--per-image`` images of one class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dsc.augment.conditioning import resize
from dsc.augment.job import AugmentJob
from dsc.errors import ConfigError
from dsc.outputs import check_output
from dsc.settings import AugmentSettings


def _spread(job: AugmentJob, n: int) -> list[int]:
    """Up to ``n`` source rows, taken round-robin over the classes."""
    labels = job.store.labels
    by_class: dict[int, list[int]] = {}
    for r in job.rows.tolist():
        by_class.setdefault(int(labels[r]), []).append(r)
    chosen: list[int] = []
    while len(chosen) < min(n, job.rows.size):
        for rows in by_class.values():
            if rows and len(chosen) < n:
                chosen.append(rows.pop(0))
    return chosen


def run_preview(data: Path, output: Path, settings: AugmentSettings, sources: dict[str, str] | None = None,
                *, n: int = 4, force: bool = False) -> Path:
    """A grid (PNG, PDF or SVG by the suffix): ``n`` real images (spread over classes), each followed by its
    variants, every tile labelled with its class, strength and seed. No store written."""
    from dsc.report.figures.style import figure_format
    from dsc.report.figures.tiles import Tile, tile_label, write_tile_grid

    output = Path(output)
    figure_format(output)
    check_output(output, force=force)
    if n < 1:
        raise ConfigError("--preview needs a number of images >= 1")
    job = AugmentJob(data, settings, sources)
    if job.family == "text":
        return _preview_text(job, output, n)
    chosen = _spread(job, n)
    keep = set(chosen)
    plan = [p for p in job.plan if p.source_index in keep]
    job.load()
    names, labels = job.store.classes, job.store.labels
    tiles: dict[int, list[Tile]] = {r: [] for r in chosen}
    cache: dict[int, Any] = {}
    for start in range(0, len(plan), job.s.batch_size):
        batch = plan[start:start + job.s.batch_size]
        images, _, cache = job.generate(batch, cache)
        for p, im in zip(batch, images, strict=True):
            name = names[p.source_label] + (f" + {names[p.other_label]}" if p.other_label >= 0 else "")
            what = ("OOD, " if job.role.is_ood else "") + f"strength {p.strength:.2f}"
            if job.family == "mix":  # Diff-Mix: toward the partner class, with its soft-label weight
                name = f"{names[p.source_label]} → {names[p.other_label]}"
                what += f", weight {p.mix_weight:.2f}"
            tiles[p.source_index].append(Tile(im, tile_label(name, what, p.seed)))
    real = resize(job.store.images(chosen), job.s.resolution)
    rows = [[Tile(real[i], tile_label(names[int(labels[r])], f"real image, row {r}")), *tiles[r]]
            for i, r in enumerate(chosen)]
    write_tile_grid(output, rows)
    job.store.close()
    return output


def _preview_text(job: AugmentJob, output: Path, n: int) -> Path:
    """Text-to-image: ``n`` rows over the classes (round-robin), each up to ``--per-image`` images of one class."""
    from dsc.report.figures.tiles import Tile, tile_label, write_tile_grid

    by_class: dict[int, list[Any]] = {}
    for p in job.plan:
        by_class.setdefault(p.source_label, []).append(p)
    rows: list[list[Any]] = []
    while len(rows) < n and any(by_class.values()):
        for plans in by_class.values():
            if plans and len(rows) < n:
                rows.append(plans[:job.s.per_image])
                del plans[:job.s.per_image]
    job.load()
    names = job.store.classes
    grid = []
    for row in rows:
        images, _, _ = job.generate(row, {})
        grid.append([Tile(im, tile_label(names[p.source_label], "text-to-image, no source", p.seed))
                     for p, im in zip(row, images, strict=True)])
    write_tile_grid(output, grid)
    job.store.close()
    return output
