"""``dsc augment DATA.h5 --model M [--tokens TOKENS/] --mode normal|ood --output AUG.h5``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dsc.cli.common import Force, JsonFlag, Resume, print_json, resolve, split_csv

GEN = "Generation"
SRC = "Source images"
OOD = "Out-of-distribution"
MODEL = "Model"
FILTER = "Confidence filter"
STRATEGY = "Strategy options"


def _floats(value: str | None, what: str) -> list[float] | None:
    from dsc.errors import ConfigError

    try:
        return split_csv(value, float)
    except ValueError:
        raise ConfigError(f"{what} must be numbers separated by commas (got {value!r})",
                          hint='e.g. --strength 0.25,0.5,0.75,1.0') from None


def augment(
    data: Annotated[Path, typer.Argument(help="The real images: a DATA.h5 made by `dsc subset`.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="AUG.h5 to write (with --preview: a .png grid).",
                                         show_default=False)],
    model: Annotated[str | None, typer.Option(help="Hub id, diffusers folder, .safetensors file or `tiny`.",
                                              rich_help_panel=MODEL)] = None,
    tokens: Annotated[Path | None, typer.Option(help="TOKENS/ folder from `dsc invert` (dafusion; optional for "
                                                     "diff-mix, text-to-image).",
                                                rich_help_panel=MODEL)] = None,
    revision: Annotated[str | None, typer.Option(help="Hub revision of --model.", rich_help_panel=MODEL)] = None,
    local_files_only: Annotated[bool | None, typer.Option("--local-files-only/--allow-download",
                                                          help="Never contact the hub.", rich_help_panel=MODEL,
                                                          show_default=False)] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N, mps.", rich_help_panel=MODEL)] = None,
    dtype: Annotated[str | None, typer.Option(help="auto, float32, float16, bfloat16.", rich_help_panel=MODEL)] = None,
    strategy: Annotated[str | None, typer.Option(help="Augmenter plugin: dafusion, real-guidance, diff-mix, "
                                                      "text-to-image, ...",
                                                 rich_help_panel=GEN)] = None,
    mode: Annotated[str | None, typer.Option(help="normal (positives) or ood (negatives).",
                                             rich_help_panel=GEN)] = None,
    preset: Annotated[str | None, typer.Option(help="dafusion or thesis: the papers' settings (explicit options "
                                                    "win).", rich_help_panel=GEN)] = None,
    per_image: Annotated[int | None, typer.Option("--per-image", help="Synthetic images per real image (M).",
                                                  rich_help_panel=GEN)] = None,
    strength: Annotated[str | None, typer.Option(help="Strength, or a list drawn per image: 0.25,0.5,0.75,1.0.",
                                                 rich_help_panel=GEN)] = None,
    strength_probs: Annotated[str | None, typer.Option(help="Probabilities of the --strength values.",
                                                       rich_help_panel=GEN)] = None,
    guidance: Annotated[float | None, typer.Option(help="Classifier-free guidance scale.", rich_help_panel=GEN)] = None,
    steps: Annotated[int | None, typer.Option(help="Scheduler steps at strength 1.", rich_help_panel=GEN)] = None,
    scheduler: Annotated[str | None, typer.Option(help="default, ddim, ddpm, pndm, lms, euler, euler-a, dpm, "
                                                       "unipc, heun.", rich_help_panel=GEN)] = None,
    prompt_template: Annotated[str | None, typer.Option(help="Prompt with {token} (and {name}).",
                                                        rich_help_panel=GEN)] = None,
    mask: Annotated[str | None, typer.Option(help="none, object (edit inside the dilated object mask) or "
                                                  "background.", rich_help_panel=GEN)] = None,
    mask_dilation: Annotated[int | None, typer.Option(help="Grow the object mask by this many pixels.",
                                                      rich_help_panel=GEN)] = None,
    resolution: Annotated[int | None, typer.Option(help="Generation and output size (multiple of 8).",
                                                   rich_help_panel=GEN)] = None,
    batch_size: Annotated[int | None, typer.Option(help="Synthetic images per UNet batch.",
                                                   rich_help_panel=GEN)] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the plan and of every image.", rich_help_panel=GEN)] = None,
    ood_strategy: Annotated[str | None, typer.Option(help="strength, other-class, inpaint-object or blend.",
                                                     rich_help_panel=OOD)] = None,
    ood_prompt: Annotated[str | None, typer.Option(help="inpaint-object: prompt for what replaces the object.",
                                                   rich_help_panel=OOD)] = None,
    blend_weight: Annotated[float | None, typer.Option(help="blend: weight of the other class.",
                                                       rich_help_panel=OOD)] = None,
    per_class: Annotated[int | None, typer.Option("--per-class", help="text-to-image: images per class (default: "
                                                  "--per-image x the class's source images).",
                                                  rich_help_panel=STRATEGY, show_default=False)] = None,
    gamma: Annotated[float | None, typer.Option(help="diff-mix: the partner class's soft-label weight is "
                                                     "strength**gamma (default 0.8).", rich_help_panel=STRATEGY,
                                                show_default=False)] = None,
    pairs: Annotated[str | None, typer.Option(help="diff-mix: partner class drawn uniform (default) or by "
                                                   "confusion (of --filter RUN's classifier on val).",
                                              rich_help_panel=STRATEGY, show_default=False)] = None,
    split: Annotated[str | None, typer.Option(help="Source split: train; val/test make an evaluation-only "
                                                   "store.", rich_help_panel=SRC)] = None,
    classes: Annotated[str | None, typer.Option(help="Only these classes (comma separated).",
                                                rich_help_panel=SRC)] = None,
    examples_per_class: Annotated[int | None, typer.Option(help="Seeded few-shot: this many real images per "
                                                                "class.", rich_help_panel=SRC)] = None,
    few_shot_seed: Annotated[int | None, typer.Option(help="Seed of the few-shot draw (default: --seed).",
                                                      rich_help_panel=SRC, show_default=False)] = None,
    filter_: Annotated[Path | None, typer.Option("--filter", help="Score every image with this run's real-data "
                                                "classifier; reject and record failures.", rich_help_panel=FILTER,
                                                show_default=False)] = None,
    min_confidence: Annotated[float | None, typer.Option(help="Normal images: keep those whose source-class "
                                                              "probability is >= X (default 0.5).",
                                                         rich_help_panel=FILTER)] = None,
    max_source_confidence: Annotated[float | None, typer.Option(
        help="--mode ood: reject OOD images whose source-class probability is above X, i.e. that the real-data "
             "classifier still puts in their source class (default 0.5).", rich_help_panel=FILTER)] = None,
    preview: Annotated[int | None, typer.Option(help="Write a PNG grid of N real images and their variants "
                                                     "instead of a store.", show_default=False)] = None,
    force: Force = False,
    resume: Resume = False,
    json_: JsonFlag = False,
) -> None:
    """Make synthetic variants of the real training images (in-distribution or OOD), batched and resumable."""
    from dsc.cli.checks import require

    require("DATA.h5", data)
    require("--tokens", tokens, folder=True)
    require("--filter", filter_, folder=True)
    from dsc import console
    from dsc.augment import run_augment, run_preview

    if json_:
        console.spinners(False)

    resolved = resolve("augment", model=model, tokens=tokens, revision=revision, local_files_only=local_files_only,
                       device=device, dtype=dtype, strategy=strategy, mode=mode, preset=preset, per_image=per_image,
                       strength=_floats(strength, "--strength"),
                       strength_probs=_floats(strength_probs, "--strength-probs"), guidance=guidance,
                       steps=steps, scheduler=scheduler, prompt_template=prompt_template, mask=mask,
                       mask_dilation=mask_dilation, resolution=resolution, batch_size=batch_size, seed=seed,
                       ood_strategy=ood_strategy, ood_prompt=ood_prompt, blend_weight=blend_weight, split=split,
                       per_class=per_class, gamma=gamma, pairs=pairs,
                       classes=split_csv(classes), examples_per_class=examples_per_class, few_shot_seed=few_shot_seed,
                       filter=filter_, min_confidence=min_confidence,
                       max_source_confidence=max_source_confidence)
    settings = resolved.section("augment")
    from dsc.registry import get_plugin

    get_plugin("augmenter", settings.strategy)  # an unknown strategy fails before the store or model is read
    sources = {k: v for k, v in resolved.sources.items() if k.startswith("augment.")}
    if preview is not None:
        path = run_preview(data, output, settings, sources, n=preview, force=force)
        _done(f"wrote preview grid {path}", json_, {"output": str(path)})
        return
    result = run_augment(data, output, settings, sources, force=force, resume=resume)
    if json_:
        print_json({"output": str(result.output), "images": result.n_images, "generated": result.n_generated,
                    "resumed": result.resumed, "already_complete": result.already_complete,
                    "seconds": round(result.seconds, 3),
                    "images_per_second": round(result.images_per_second, 3), "summary": result.summary})
        return
    if result.already_complete:
        from dsc.console import count, out

        out.print(f"{result.output} is already complete ({count(result.n_images, 'image')}); nothing to resume, "
                  "no file changed (pass --force to generate it again)", highlight=False, markup=False)
        return
    _render(result)


def _done(message: str, json_: bool, obj: dict[str, Any]) -> None:
    from dsc.console import out

    if json_:
        print_json(obj)
    else:
        out.print(message)


def _render(result: Any) -> None:
    from rich.table import Table

    from dsc.console import count, out

    filtered = any("rejected" in row for row in result.summary.values())
    table = Table(title="synthetic images per source class", title_justify="left")
    cols = ["class", "sources", "images", "ood", "mean strength"]
    if filtered:
        cols += ["generated", "rejected", "accepted %"]
    for col in cols:
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, row in result.summary.items():
        cells = [name, str(row["sources"]), str(row["images"]), str(row["ood"]), f"{row['mean_strength']:.2f}"]
        if filtered:
            cells += [str(row["generated"]), str(row["rejected"]), f"{100 * row['acceptance']:.1f}"]
        table.add_row(*cells)
    out.print(table)
    resumed = f" ({result.n_generated} generated now, resumed)" if result.resumed else ""
    kept = ""
    if filtered:
        accepted = sum(row["images"] for row in result.summary.values())
        kept = f" generated, {accepted} accepted by the filter"
    out.print(f"wrote {result.output}: {count(result.n_images, 'image')}{kept}{resumed}; generation "
              f"{result.images_per_second:.2f} images/s, {result.seconds:.1f} s in all")
