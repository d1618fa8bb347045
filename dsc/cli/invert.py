"""``dsc invert DATA.h5 --model M --output TOKENS/``: learn one token per class (textual inversion), a LoRA
(``--method lora``) or both (``--method ti+lora``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dsc.cli.common import Force, JsonFlag, Resume, print_json, resolve, split_csv

_M = "Model"
_T = "Training"
_D = "Data"
_L = "Method"


def invert(
    data: Annotated[Path, typer.Argument(help="DATA.h5 made by `dsc subset` (train split is used).",
                                         show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder TOKENS/ (one .safetensors per "
                                         "class + tokens.json).", show_default=False)],
    model: Annotated[str | None, typer.Option("--model", help="Hub repo id, local diffusers folder, .safetensors/"
                                              ".ckpt file, or `tiny`. (default: CompVis/stable-diffusion-v1-4)",
                                              rich_help_panel=_M, show_default=False)] = None,
    revision: Annotated[str | None, typer.Option("--revision", help="Hub revision (branch, tag or commit).",
                                                 rich_help_panel=_M, show_default=False)] = None,
    local_files_only: Annotated[bool | None, typer.Option("--local-files-only/--allow-download",
                                                          help="Never contact the hub (also HF_HUB_OFFLINE=1).",
                                                          rich_help_panel=_M, show_default=False)] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps. (default: auto)",
                                               rich_help_panel=_M, show_default=False)] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="auto, float32, float16 or bfloat16 (auto: float16 "
                                              "on CUDA, else float32).", rich_help_panel=_M,
                                              show_default=False)] = None,
    method: Annotated[str | None, typer.Option("--method", help="textual-inversion (a token per class), lora (one "
                                               "LoRA on the UNet's attention, prompts with the class names) or "
                                               "ti+lora (both, trained together: Diff-Mix). (default: "
                                               "textual-inversion)", rich_help_panel=_L, show_default=False)] = None,
    lora_rank: Annotated[int | None, typer.Option("--lora-rank", help="LoRA rank. (default: 4)", rich_help_panel=_L,
                                                  show_default=False)] = None,
    lora_alpha: Annotated[float | None, typer.Option("--lora-alpha", help="LoRA alpha; its output is scaled by "
                                                     "alpha/rank. (default: the rank)", rich_help_panel=_L,
                                                     show_default=False)] = None,
    lora_targets: Annotated[str | None, typer.Option("--lora-targets", help="UNet layers the LoRA adapts (comma-"
                                                     "separated). (default: to_q,to_k,to_v,to_out.0)",
                                                     rich_help_panel=_L, show_default=False)] = None,
    lora_lr: Annotated[float | None, typer.Option("--lora-lr", help="The LoRA's learning rate (not scaled). "
                                                  "(default: 1e-4)", rich_help_panel=_L, show_default=False)] = None,
    prior_preservation: Annotated[bool | None, typer.Option("--prior-preservation/--no-prior-preservation",
                                                            help="DreamBooth prior preservation (lora, ti+lora): "
                                                            "class images of the frozen model in every batch. "
                                                            "(default: off)", rich_help_panel=_L,
                                                            show_default=False)] = None,
    prior_images: Annotated[int | None, typer.Option("--prior-images", help="Class images per class. (default: "
                                                     "100)", rich_help_panel=_L, show_default=False)] = None,
    prior_weight: Annotated[float | None, typer.Option("--prior-weight", help="Weight of the class images' loss. "
                                                       "(default: 1.0)", rich_help_panel=_L,
                                                       show_default=False)] = None,
    prior_steps: Annotated[int | None, typer.Option("--prior-steps", help="Denoising steps per class image. "
                                                    "(default: 50)", rich_help_panel=_L, show_default=False)] = None,
    num_vectors: Annotated[int | None, typer.Option("--num-vectors", help="Vectors per token (all trained, all in "
                                                    "prompts). (default: 4)", rich_help_panel=_T,
                                                    show_default=False)] = None,
    initializer: Annotated[str | None, typer.Option("--initializer", help="`class-name` (the class's words) or a "
                                                    "word such as `the` or `motor`. (default: class-name)",
                                                    rich_help_panel=_T, show_default=False)] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Optimizer steps per class (lora, ti+lora: in all). "
                                              "(default: 2000)",
                                              rich_help_panel=_T, show_default=False)] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Learning rate of the tokens. (default: 5e-4)", rich_help_panel=_T,
                                             show_default=False)] = None,
    scale_lr: Annotated[bool | None, typer.Option("--scale-lr/--no-scale-lr", help="Multiply lr by batch size x "
                                                  "gradient accumulation. (default: scale)", rich_help_panel=_T,
                                                  show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Images per micro-batch. (default: 8)",
                                                   rich_help_panel=_T, show_default=False)] = None,
    gradient_accumulation: Annotated[int | None, typer.Option("--gradient-accumulation", help="Micro-batches per "
                                                              "step. (default: 1)", rich_help_panel=_T,
                                                              show_default=False)] = None,
    lr_warmup: Annotated[int | None, typer.Option("--lr-warmup", help="Linear warm-up steps. (default: 0)",
                                                  rich_help_panel=_T, show_default=False)] = None,
    resolution: Annotated[int | None, typer.Option("--resolution", help="Training resolution in pixels. "
                                                   "(default: 512)", rich_help_panel=_T, show_default=False)] = None,
    templates: Annotated[str | None, typer.Option("--templates", help="Prompt templates: dafusion, "
                                                  "diffusers-object or photo. (default: dafusion)",
                                                  rich_help_panel=_T, show_default=False)] = None,
    flip: Annotated[bool | None, typer.Option("--flip/--no-flip", help="Also learn from mirrored images. "
                                              "(default: flip)", rich_help_panel=_T, show_default=False)] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of every random choice. (default: 0)",
                                             rich_help_panel=_T, show_default=False)] = None,
    examples_per_class: Annotated[int | None, typer.Option("--examples-per-class", help="Seeded few-shot subset "
                                                           "of each class's train images. (default: all)",
                                                           rich_help_panel=_D, show_default=False)] = None,
    few_shot_seed: Annotated[int | None, typer.Option("--few-shot-seed", help="Seed of the few-shot draw. "
                                                      "(default: --seed)", rich_help_panel=_D,
                                                      show_default=False)] = None,
    crop_to_object: Annotated[bool | None, typer.Option("--crop-to-object/--no-crop-to-object", help="Crop each "
                                                        "image to a square around its object mask.",
                                                        rich_help_panel=_D, show_default=False)] = None,
    classes: Annotated[str | None, typer.Option("--classes", help="Only these classes (comma-separated names).",
                                                rich_help_panel=_D, show_default=False)] = None,
    validation_grids: Annotated[bool | None, typer.Option("--validation-grids/--no-validation-grids",
                                                          help="Write a PNG per class: real images over samples "
                                                          "of 'a photo of a <token>'.", show_default=False,
                                                          rich_help_panel="Validation")] = None,
    resume: Resume = False,
    force: Force = False,
    json_: JsonFlag = False,
) -> None:
    """Learn one token per class (textual inversion, DA-Fusion style), a LoRA, or both into TOKENS/."""
    from dsc.cli.checks import require

    require("DATA.h5", data)
    from dsc import console
    from dsc.console import count, out
    from dsc.diffusion.invert import run_invert

    if json_:
        console.spinners(False)

    resolved = resolve("invert", model=model, revision=revision, local_files_only=local_files_only, device=device,
                       dtype=dtype, num_vectors=num_vectors, initializer=initializer, steps=steps, lr=lr,
                       scale_lr=scale_lr, batch_size=batch_size, gradient_accumulation=gradient_accumulation,
                       lr_warmup=lr_warmup, resolution=resolution, templates=templates, flip=flip, seed=seed,
                       examples_per_class=examples_per_class, few_shot_seed=few_shot_seed,
                       crop_to_object=crop_to_object, validation_grids=validation_grids, method=method,
                       lora_rank=lora_rank, lora_alpha=lora_alpha, lora_targets=split_csv(lora_targets),
                       lora_lr=lora_lr, prior_preservation=prior_preservation, prior_images=prior_images,
                       prior_weight=prior_weight, prior_steps=prior_steps)
    sources = {k.split(".", 1)[1]: v for k, v in resolved.sources.items() if k.startswith("invert.")}
    from dsc.diffusion.lora_options import check_method_options

    check_method_options(resolved.section("invert"), {k for k, v in sources.items() if v == "command line"})
    manifest = run_invert(data, output, resolved.section("invert"), classes=split_csv(classes),
                          resume=resume, force=force, settings_sources=sources)
    if json_:
        print_json({**manifest.to_json(), "already_complete": manifest.already_complete})
        return
    if manifest.already_complete:
        out.print(f"{manifest.directory} is already complete ({count(len(manifest.classes), 'token')}); nothing to "
                  "resume, no file changed (pass --force to learn them again)", highlight=False, markup=False)
        return
    if manifest.lora:
        _print_lora(manifest)
        return
    from rich.table import Table

    table = Table(title=f"tokens in {manifest.directory}", title_justify="left")
    for col in ("class", "token", "vectors", "loss first→last", "steps/s", "file"):
        table.add_column(col, justify="right" if col in ("vectors", "steps/s") else "left")
    for name, entry in manifest.classes.items():
        first = sum(entry.loss[:10]) / max(1, len(entry.loss[:10]))
        last = sum(entry.loss[-10:]) / max(1, len(entry.loss[-10:]))
        table.add_row(name, entry.token, str(entry.num_vectors), f"{first:.4f} → {last:.4f}",
                      f"{entry.steps_per_second:.2f}", entry.file)
    out.print(table)
    entries = list(manifest.classes.values())
    steps = sum(e.steps for e in entries if e.steps)
    seconds = sum(e.seconds for e in entries if e.seconds)
    rate = f"learning {steps / seconds:.2f} optimizer steps/s, " if steps and seconds else ""
    total = (manifest.timings or {}).get("total")
    out.print(f"wrote {manifest.directory}: {count(len(entries), 'token')} ({count(steps, 'step')}); {rate}"
              + (f"{total:.1f} s in all" if total else "").rstrip(", "), highlight=False, markup=False)
    if entries:
        out.print(f"model {manifest.model_id}  ·  use in prompts as e.g. \"a photo of a {entries[0].token}\"",
                  highlight=False, markup=False)


def _print_lora(manifest) -> None:  # noqa: ANN001 - a TokenManifest
    """The summary of ``--method lora|ti+lora``: what each class's prompts carry, then the LoRA's training."""
    from rich.table import Table

    from dsc.console import out

    lora = manifest.lora
    table = Table(title=f"{manifest.method} in {manifest.directory}", title_justify="left")
    for col in ("class", "in prompts", "vectors", "file"):
        table.add_column(col)
    for name, entry in manifest.classes.items():
        table.add_row(name, entry.token, str(entry.num_vectors or "-"), entry.file or "-")
    out.print(table)
    loss = lora.get("loss") or [0.0]
    first, last = sum(loss[:10]) / len(loss[:10]), sum(loss[-10:]) / len(loss[-10:])
    out.print(f"wrote {manifest.directory}: LoRA rank {lora['rank']} (alpha {lora['alpha']:g}) on "
              f"{','.join(lora['targets'])}, {lora['parameters']} parameters, {lora['steps']} steps, loss "
              f"{first:.4f} → {last:.4f}; learning {lora['steps_per_second']:.2f} optimizer steps/s ({lora['file']})",
              highlight=False, markup=False)
    if lora.get("prior"):
        p = lora["prior"]
        out.print(f"prior preservation: {p['images_per_class']} class images per class ({p['steps']} steps), loss "
                  f"weight {p['weight']:g}", highlight=False, markup=False)
    sample = next(iter(manifest.classes.values()), None)
    if sample is not None:
        out.print(f"model {manifest.model_id}  ·  use in prompts as e.g. \"a photo of a {sample.token}\"",
                  highlight=False, markup=False)
