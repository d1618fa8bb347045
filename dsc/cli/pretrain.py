"""``dsc pretrain DATA.h5 --backbone NAME --output RUN/``: supervised contrastive pre-training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dsc import console
from dsc.cli.checks import require
from dsc.cli.common import Force, JsonFlag, Resume, print_json, resolve

P_MODEL, P_DATA, P_OPT, P_RUN = "Model", "Data", "Optimisation", "Run"

Data = Annotated[Path, typer.Argument(help="DATA.h5 made by `dsc subset`.", show_default=False)]
Output = Annotated[Path, typer.Option("--output", "-o", help="Run directory to create.", show_default=False)]
Synthetic = Annotated[list[Path] | None, typer.Option(
    "--synthetic", help="Synthetic store (in-distribution rows) made from DATA.h5; repeatable.",
    rich_help_panel=P_DATA, show_default=False)]
Negatives = Annotated[list[Path] | None, typer.Option(
    "--negatives", help="Synthetic OOD store (rows with is_ood) used as negatives; repeatable.",
    rich_help_panel=P_DATA, show_default=False)]
Backbone = Annotated[str | None, typer.Option(help="Backbone: \\[plugin:]model, e.g. resnet18, timm:convnext_tiny.",
                                              rich_help_panel=P_MODEL, show_default=False)]
Pretrained = Annotated[bool | None, typer.Option("--pretrained/--no-pretrained", help="Start from the plugin's "
                                                 "pretrained weights (local cache).", rich_help_panel=P_MODEL,
                                                 show_default=False)]
Checkpoint = Annotated[Path | None, typer.Option(help="Initial encoder weights (.safetensors / .pt).",
                                                 rich_help_panel=P_MODEL, show_default=False)]
ImageSize = Annotated[int | None, typer.Option(help="Training resolution in px (images are resized once at load). "
                                               "Default: the resolution of DATA.h5, at most the backbone's "
                                               "native input size.", rich_help_panel=P_DATA, show_default=False)]
Stem = Annotated[str | None, typer.Option(help="ResNet stem: auto (small for a ResNet from random weights at "
                                          "--image-size <= 64), small (3x3 stride-1 conv, no max-pool) or "
                                          "imagenet.", rich_help_panel=P_MODEL, show_default=False)]
BatchSize = Annotated[int | None, typer.Option(help="Global batch size (split across processes).",
                                               rich_help_panel=P_OPT, show_default=False)]
Epochs = Annotated[int | None, typer.Option(help="Passes over the positives; with --steps or --images, the "
                                            "number of evaluation rounds.", rich_help_panel=P_OPT,
                                            show_default=False)]
Steps = Annotated[int | None, typer.Option(help="Training budget in optimizer steps instead of epochs (see "
                                           "docs/training.md#training-budget).", rich_help_panel=P_OPT,
                                           show_default=False)]
Images = Annotated[int | None, typer.Option(help="Training budget in images drawn into batches instead of epochs.",
                                            rich_help_panel=P_OPT, show_default=False)]
Lr = Annotated[float | None, typer.Option(help="Peak learning rate.", rich_help_panel=P_OPT, show_default=False)]
Optimizer = Annotated[str | None, typer.Option(help="sgd or adamw.", rich_help_panel=P_OPT, show_default=False)]
Momentum = Annotated[float | None, typer.Option(help="SGD momentum.", rich_help_panel=P_OPT, show_default=False)]
WeightDecay = Annotated[float | None, typer.Option(help="Weight decay.", rich_help_panel=P_OPT, show_default=False)]
Warmup = Annotated[int | None, typer.Option(help="Linear warm-up epochs before the cosine decay.",
                                            rich_help_panel=P_OPT, show_default=False)]
Seed = Annotated[int | None, typer.Option(help="Seed of initialisation, batches and augmentation.",
                                          rich_help_panel=P_RUN, show_default=False)]
FewShot = Annotated[int | None, typer.Option(
    "--examples-per-class", help="Few-shot: train on this many real train images per class, the seeded draw "
    "invert and augment make with the same number and seed (synthetic rows made from other images are left "
    "out).", rich_help_panel=P_DATA, show_default=False)]
FewShotSeed = Annotated[int | None, typer.Option(help="Seed of the few-shot draw (default: --seed); match the "
                                                 "--seed of the invert/augment runs made for it.",
                                                 rich_help_panel=P_DATA, show_default=False)]
Balanced = Annotated[bool | None, typer.Option("--balanced/--no-balanced", help="Class-balanced sampling.",
                                               rich_help_panel=P_DATA, show_default=False)]
SynPolicy = Annotated[str | None, typer.Option(help="extra: synthetic images are extra samples of their class; "
                                               "view: replace a view/image by its own synthetic variant.",
                                               rich_help_panel=P_DATA, show_default=False)]
SynProb = Annotated[float | None, typer.Option(help="Replacement probability for --synthetic-policy view.",
                                               rich_help_panel=P_DATA, show_default=False)]
NegFraction = Annotated[float | None, typer.Option(help="Share of each batch drawn from --negatives "
                                                   "(default: their share of all training images).",
                                                   rich_help_panel=P_DATA, show_default=False)]
Augmentation = Annotated[str | None, typer.Option(help="auto (light at <= 64 px, supcon above), supcon "
                                                  "(SupContrast recipe), light (crop+flip) or none.",
                                                  rich_help_panel=P_DATA, show_default=False)]
Workers = Annotated[int | None, typer.Option(help="0: prepare batches inline; >= 1: prepare the next batch in a "
                                             "background thread while the current one trains.",
                                             rich_help_panel=P_RUN, show_default=False)]
Amp = Annotated[str | None, typer.Option(help="Mixed precision on GPU: auto, off, fp16, bf16 (off on CPU).",
                                         rich_help_panel=P_RUN, show_default=False)]
ChannelsLast = Annotated[bool | None, typer.Option("--channels-last/--no-channels-last",
                                                   help="channels_last (NHWC) model and inputs.",
                                                   rich_help_panel=P_RUN, show_default=False)]
KnnK = Annotated[int | None, typer.Option(help="k of the kNN accuracy on val.", rich_help_panel=P_RUN,
                                          show_default=False)]




def require_inputs(data: Path, synthetic: list[Path] | None, negatives: list[Path] | None,
                   checkpoint: Path | None) -> None:
    """Every input path of pretrain/baseline exists (checked before torch is imported)."""
    require("DATA.h5", data)
    require("--synthetic", synthetic)
    require("--negatives", negatives)
    require("--checkpoint", checkpoint)


def check_backbone_early(resolved: Any, section: str, json_: bool = False) -> None:
    """An unknown backbone plugin or model, or missing cached weights, fail now: before the data is read.
    (Turns the start-up spinners off under --json: its output is for programs.)"""
    from dsc.backbones import check_backbone

    if json_:
        console.spinners(False)
    s = resolved.section(section)
    with console.status(f"checking backbone {s.backbone}…"):  # imports the plugin's library (timm: seconds)
        check_backbone(s.backbone, pretrained=s.pretrained and not s.checkpoint)
    require("--checkpoint", s.checkpoint)  # also one set in dsc.toml or the environment


def warn_unused(resolved: Any, section: str, given: list[Path] | None, keys: tuple[str, ...],
                    needs: str = "--negatives", what: str = "OOD images", fix: str = "AUG-OOD.h5") -> None:
    """Settings that were set (not defaults) but do nothing without ``needs`` (``--negatives``: the OOD
    settings; ``--synthetic``: the mixed-image settings): say so."""
    import logging

    if given:
        return
    s = resolved.section(section)
    for key in keys:
        source = resolved.sources.get(f"{section}.{key}", "default")
        if source != "default":
            flag = "--" + key.replace("_", "-")
            logging.getLogger("dsc").warning("%s %s (from the %s) has no effect without %s: there are no %s; "
                                             "add %s %s or drop it", flag, getattr(s, key), source, needs, what,
                                             needs, fix)


def training_speed(metrics: list[dict[str, Any]]) -> float | None:
    """Images per second through the training steps (validation excluded) over the rounds in ``metrics``."""
    seen, images, seconds = 0, 0, 0.0
    for row in metrics:
        drawn, seen = int(row.get("images_seen") or 0) - seen, int(row.get("images_seen") or 0)
        if row.get("images_per_s"):
            images, seconds = images + drawn, seconds + drawn / row["images_per_s"]
    return images / seconds if seconds else None


def run_summary(result: Any, json_: bool, extra: dict[str, Any] | None = None) -> None:
    from dsc.console import out

    if not result.main:
        return
    noop = getattr(result, "already_complete", False)
    doc = {"run": str(result.run_dir), "status": result.status, "epochs": result.epochs,
           "best_epoch": result.best_epoch, "best_val": result.best_val, "optimizer_steps": result.optimizer_steps,
           "images_seen": result.images_seen, "timings": result.timings, **({"already_complete": True} if noop
                                                                           else {}), **(extra or {})}
    if json_:
        print_json(doc)
        return
    from dsc.console import count

    val = f"{result.best_val:.4f}" if result.best_val is not None else "n/a"
    epochs = count(result.epochs, "epoch")
    if noop:
        out.print(f"{result.run_dir} is already complete ({epochs}, best epoch {result.best_epoch}, "
                  f"val {val}); nothing to resume, no file changed (pass --force to train it again)",
                  highlight=False, markup=False)
        return
    seconds = sum(v for v in result.timings.values() if isinstance(v, int | float))
    speed = training_speed(result.metrics)
    rate = f"training {speed:,.1f} images/s, " if speed else ""
    out.print(f"{result.run_dir}: {result.status}, {epochs} ({count(result.optimizer_steps, 'step')}, "
              f"{count(result.images_seen, 'image')}), best epoch {result.best_epoch} (val {val})"
              + "".join(f", {k} {v}" for k, v in (extra or {}).items()) + f"; {rate}{seconds:.1f} s in all",
              highlight=False, markup=False)


def pretrain(
    data: Data,
    output: Output,
    synthetic: Synthetic = None,
    negatives: Negatives = None,
    backbone: Backbone = None,
    pretrained: Pretrained = None,
    checkpoint: Checkpoint = None,
    image_size: ImageSize = None,
    stem: Stem = None,
    batch_size: BatchSize = None,
    epochs: Epochs = None,
    steps: Steps = None,
    images: Images = None,
    lr: Lr = None,
    optimizer: Optimizer = None,
    momentum: Momentum = None,
    weight_decay: WeightDecay = None,
    warmup_epochs: Warmup = None,
    temperature: Annotated[float | None, typer.Option(help="SupCon temperature.", rich_help_panel=P_OPT,
                                                      show_default=False)] = None,
    base_temperature: Annotated[float | None, typer.Option(help="Rescales the loss by T/base (default: none).",
                                                           rich_help_panel=P_OPT, show_default=False)] = None,
    head: Annotated[str | None, typer.Option(help="Projection head: mlp-bn (default; BatchNorm projector that "
                                             "cannot collapse) or mlp (SupContrast's); docs/training.md.",
                                             rich_help_panel=P_MODEL,
                                             show_default=False)] = None,
    head_dim: Annotated[int | None, typer.Option(help="Projection dimension.", rich_help_panel=P_MODEL,
                                                 show_default=False)] = None,
    head_hidden: Annotated[int | None, typer.Option(help="Hidden width of the head (default: feature dim).",
                                                    rich_help_panel=P_MODEL, show_default=False)] = None,
    seed: Seed = None,
    examples_per_class: FewShot = None,
    few_shot_seed: FewShotSeed = None,
    balanced: Balanced = None,
    synthetic_policy: SynPolicy = None,
    synthetic_probability: SynProb = None,
    negatives_fraction: NegFraction = None,
    ood_policy: Annotated[str | None, typer.Option(help="negatives, hard or instance (see docs/training.md).",
                                                   rich_help_panel=P_DATA, show_default=False)] = None,
    ood_weight: Annotated[float | None, typer.Option(help="Weight of OOD terms in the loss denominators.",
                                                     rich_help_panel=P_DATA, show_default=False)] = None,
    mix_label: Annotated[str | None, typer.Option(help="Label of a mixed (diff-mix) image: dominant (its class "
                                                  "of weight >= --mix-threshold, else left out of the "
                                                  "positives), source (class i) or drop (left out); "
                                                  "docs/training.md.", rich_help_panel=P_DATA,
                                                  show_default=False)] = None,
    mix_threshold: Annotated[float | None, typer.Option(help="Least weight of the dominant class, 0.5-1 "
                                                        "(default 0.7).", rich_help_panel=P_DATA,
                                                        show_default=False)] = None,
    augmentation: Augmentation = None,
    workers: Workers = None,
    amp: Amp = None,
    channels_last: ChannelsLast = None,
    knn_k: KnnK = None,
    resume: Resume = False,
    force: Force = False,
    json_: JsonFlag = False,
) -> None:
    """Supervised contrastive pre-training (two views, MLP head, SupCon loss) with optional synthetic
    positives and OOD negatives. Writes RUN/ (run.json, metrics.jsonl, checkpoints)."""
    require_inputs(data, synthetic, negatives, checkpoint)
    resolved = resolve("pretrain", backbone=backbone, pretrained=pretrained, checkpoint=checkpoint,
                       image_size=image_size, batch_size=batch_size, epochs=epochs, steps=steps, images=images,
                       stem=stem, lr=lr, optimizer=optimizer,
                       momentum=momentum, weight_decay=weight_decay, warmup_epochs=warmup_epochs,
                       temperature=temperature, base_temperature=base_temperature, head=head, head_dim=head_dim,
                       head_hidden=head_hidden, seed=seed, examples_per_class=examples_per_class,
                       few_shot_seed=few_shot_seed, balanced=balanced, synthetic_policy=synthetic_policy,
                       synthetic_probability=synthetic_probability, negatives_fraction=negatives_fraction,
                       ood_policy=ood_policy, ood_weight=ood_weight, mix_label=mix_label,
                       mix_threshold=mix_threshold, augmentation=augmentation, workers=workers,
                       amp=amp, channels_last=channels_last, knn_k=knn_k)
    check_backbone_early(resolved, "pretrain", json_)
    warn_unused(resolved, "pretrain", negatives, ("ood_policy", "ood_weight", "negatives_fraction"))
    warn_unused(resolved, "pretrain", synthetic, ("mix_label", "mix_threshold"), needs="--synthetic",
                    what="mixed images", fix="DIFFMIX.h5")
    with console.status("importing torch…"):
        from dsc.train.pretrain import pretrain as run_pretrain

    sources = {k.split(".", 1)[1]: v for k, v in resolved.sources.items() if k.startswith("pretrain.")}
    result = run_pretrain(data, output, resolved.section("pretrain"), synthetic=synthetic or [],
                          negatives=negatives or [], sources=sources, force=force, resume=resume)
    run_summary(result, json_)
