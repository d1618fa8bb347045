"""``dsc subset``: choose classes of a dataset and write them to a DATA.h5 store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from dsc.cli.common import Force, JsonFlag, print_json, resolve, split_csv

DATA = "Dataset"
CHOICE = "Choosing classes and images"
PIXELS = "Pixels"
RUN = "Run"


def _parse_split(value: str | None) -> tuple[float, float, float] | None:
    from dsc.errors import InputError

    if value is None:
        return None
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise InputError(f"--split {value!r} is not three numbers", hint="e.g. --split 0.7,0.15,0.15") from None
    if len(parts) != 3:
        raise InputError(f"--split {value!r} has {len(parts)} parts, expected train,val,test",
                         hint="e.g. --split 0.7,0.15,0.15")
    return parts  # type: ignore[return-value]


def _parse_options(values: list[str] | None) -> dict[str, Any] | None:
    """``key=value`` pairs; values are read as JSON when they parse (numbers, true/false, lists)."""
    from dsc.errors import InputError

    if not values:
        return None
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--option {item!r} is not key=value", hint="e.g. --option seed=3")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def subset(
    output: Annotated[Path, typer.Option("--output", "-o", help="The store to write (.h5).",
                                         show_default=False, rich_help_panel=RUN)],
    dataset: Annotated[str | None, typer.Option(help="Dataset plugin (see `dsc plugins`). \\[default: toyparts]",
                                                show_default=False, rich_help_panel=DATA)] = None,
    root: Annotated[Path | None, typer.Option(help="Dataset root folder.", show_default=False,
                                              rich_help_panel=DATA)] = None,
    masks: Annotated[Path | None, typer.Option(help="Mask folder (datasets with a separate mask tree).",
                                               show_default=False, rich_help_panel=DATA)] = None,
    option: Annotated[list[str] | None, typer.Option("--option", help="Dataset plugin option key=value "
                                                     "(repeatable).", show_default=False,
                                                     rich_help_panel=DATA)] = None,
    super_class: Annotated[str | None, typer.Option(help="Only classes of this super-class.", show_default=False,
                                                    rich_help_panel=CHOICE)] = None,
    tag: Annotated[str | None, typer.Option(help="Only classes with this tag.", show_default=False,
                                            rich_help_panel=CHOICE)] = None,
    classes: Annotated[int | None, typer.Option(help="Choose N classes at random (seeded). \\[default: all]",
                                                show_default=False, rich_help_panel=CHOICE)] = None,
    class_names: Annotated[str | None, typer.Option(help="Exactly these classes, comma-separated.",
                                                    show_default=False, rich_help_panel=CHOICE)] = None,
    holdout_classes: Annotated[int | None, typer.Option(help="K more classes kept out of training, stored as "
                                                        "test data with label -1 (far-OOD). \\[default: 0]",
                                                        show_default=False, rich_help_panel=CHOICE)] = None,
    min_per_class: Annotated[int | None, typer.Option(help="Skip classes with fewer images. \\[default: 1]",
                                                      show_default=False, rich_help_panel=CHOICE)] = None,
    max_per_class: Annotated[int | None, typer.Option(help="Keep at most K images per class (random, seeded). "
                                                      "\\[default: all]", show_default=False,
                                                      rich_help_panel=CHOICE)] = None,
    split: Annotated[str | None, typer.Option(help="train,val,test fractions when the dataset has no splits. "
                                              "\\[default: 0.7,0.15,0.15]", show_default=False,
                                              rich_help_panel=CHOICE)] = None,
    require_groups: Annotated[bool | None, typer.Option(
        "--require-groups", help="Refuse to split images that have no group (by default each is its own group, "
        "with a warning).", show_default=False, rich_help_panel=CHOICE)] = None,
    crop_to_object: Annotated[bool | None, typer.Option("--crop-to-object/--no-crop-to-object",
                                                        help="Crop a square box around the object mask. "
                                                        "\\[default: no]", show_default=False,
                                                        rich_help_panel=PIXELS)] = None,
    mask_dilation: Annotated[int | None, typer.Option(help="Grow the object box by PX pixels per side. "
                                                      "\\[default: 32]", show_default=False,
                                                      rich_help_panel=PIXELS)] = None,
    pad: Annotated[str | None, typer.Option(help="Fill outside image borders: edge or constant (black). "
                                            "\\[default: edge]", show_default=False,
                                            rich_help_panel=PIXELS)] = None,
    on_missing_mask: Annotated[str | None, typer.Option(help="Missing/unreadable/wrong-size mask: error, skip "
                                                        "the image, or full (whole image). \\[default: error]",
                                                        show_default=False, rich_help_panel=PIXELS)] = None,
    resolution: Annotated[int | None, typer.Option(help="Square output size in pixels. \\[default: 224]",
                                                   show_default=False, rich_help_panel=PIXELS)] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for class choice, caps and splits. \\[default: 0]",
                                             show_default=False, rich_help_panel=RUN)] = None,
    workers: Annotated[int | None, typer.Option(help="Decode processes (0 = one per core). \\[default: 0]",
                                                show_default=False, rich_help_panel=RUN)] = None,
    force: Force = False,
    json_: JsonFlag = False,
) -> None:
    """Choose classes of a dataset; convert, crop and resize their images into a DATA.h5 store."""
    from dsc.subset import build_subset

    resolved = resolve(
        "subset", dataset=dataset, root=root, masks=masks, options=_parse_options(option),
        super_class=super_class, tag=tag, classes=classes, class_names=split_csv(class_names),
        holdout_classes=holdout_classes, min_per_class=min_per_class, max_per_class=max_per_class,
        split=_parse_split(split), require_groups=require_groups, crop_to_object=crop_to_object,
        mask_dilation=mask_dilation, pad=pad,
        on_missing_mask=on_missing_mask, resolution=resolution, seed=seed, workers=workers,
    )
    subset_sources = {k: v for k, v in resolved.sources.items() if k.startswith("subset.")}
    result = build_subset(resolved.section("subset"), output, force=force, sources=subset_sources,
                          show_progress=not json_)
    if json_:
        print_json({"path": str(result.path), "n": result.n, "fingerprint": result.fingerprint,
                    "timings": result.timings, "summary": result.summary})
        return
    from dsc.cli.render import render_subset_summary

    render_subset_summary(result.summary, path=result.path, fingerprint=result.fingerprint,
                          timings=result.timings)
