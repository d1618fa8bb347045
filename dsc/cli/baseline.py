"""``dsc baseline DATA.h5 --backbone NAME --output RUN/``: the cross-entropy baseline."""

from __future__ import annotations

from typing import Annotated

import typer

from dsc.cli.common import Force, JsonFlag, Resume, resolve
from dsc.cli.pretrain import (
    P_DATA,
    P_OPT,
    P_RUN,
    Amp,
    Augmentation,
    Backbone,
    Balanced,
    BatchSize,
    ChannelsLast,
    Checkpoint,
    Data,
    Epochs,
    FewShot,
    FewShotSeed,
    Images,
    ImageSize,
    KnnK,
    Lr,
    Momentum,
    Negatives,
    NegFraction,
    Optimizer,
    Output,
    Pretrained,
    Seed,
    Stem,
    Steps,
    SynPolicy,
    SynProb,
    Synthetic,
    Warmup,
    WeightDecay,
    Workers,
    check_backbone_early,
    require_inputs,
    run_summary,
)


def baseline(
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
    label_smoothing: Annotated[float | None, typer.Option(help="Label smoothing of the cross-entropy.",
                                                          rich_help_panel=P_OPT, show_default=False)] = None,
    seed: Seed = None,
    examples_per_class: FewShot = None,
    few_shot_seed: FewShotSeed = None,
    balanced: Balanced = None,
    synthetic_policy: SynPolicy = None,
    synthetic_probability: SynProb = None,
    negatives_fraction: NegFraction = None,
    ood_loss: Annotated[str | None, typer.Option(help="How --negatives are used: none, extra-class (class K) or "
                                                 "outlier-exposure (uniform-target cross-entropy).",
                                                 rich_help_panel=P_DATA, show_default=False)] = None,
    ood_weight: Annotated[float | None, typer.Option(help="Weight of the outlier-exposure term.",
                                                     rich_help_panel=P_DATA, show_default=False)] = None,
    protocol: Annotated[str | None, typer.Option(help="fine-tune (encoder and linear layer, end to end) or "
                                                 "linear (the encoder frozen: the frozen-features baseline of a "
                                                 "--pretrained or --checkpoint encoder).",
                                                 rich_help_panel=P_OPT, show_default=False)] = None,
    corruptions: Annotated[bool | None, typer.Option("--corruptions/--no-corruptions",
                                                     help="Measure corruption robustness at the end.",
                                                     rich_help_panel=P_RUN, show_default=False)] = None,
    augmentation: Augmentation = None,
    workers: Workers = None,
    amp: Amp = None,
    channels_last: ChannelsLast = None,
    knn_k: KnnK = None,
    resume: Resume = False,
    force: Force = False,
    json_: JsonFlag = False,
) -> None:
    """Cross-entropy training of encoder + linear layer, same data options as pretrain; the best epoch by val
    is evaluated on test into RUN/metrics.json."""
    require_inputs(data, synthetic, negatives, checkpoint)
    resolved = resolve("baseline", backbone=backbone, pretrained=pretrained, checkpoint=checkpoint,
                       image_size=image_size, batch_size=batch_size, epochs=epochs, steps=steps, images=images,
                       stem=stem, lr=lr, optimizer=optimizer,
                       momentum=momentum, weight_decay=weight_decay, warmup_epochs=warmup_epochs,
                       label_smoothing=label_smoothing, seed=seed, examples_per_class=examples_per_class,
                       few_shot_seed=few_shot_seed, balanced=balanced,
                       synthetic_policy=synthetic_policy, synthetic_probability=synthetic_probability,
                       negatives_fraction=negatives_fraction, ood_loss=ood_loss, ood_weight=ood_weight,
                       protocol=protocol, corruptions=corruptions, augmentation=augmentation, workers=workers,
                       amp=amp, channels_last=channels_last, knn_k=knn_k)
    check_backbone_early(resolved, "baseline", json_)
    import json

    from dsc import console

    with console.status("importing torch…"):
        from dsc.train.baseline import baseline as run_baseline

    sources = {k.split(".", 1)[1]: v for k, v in resolved.sources.items() if k.startswith("baseline.")}
    result = run_baseline(data, output, resolved.section("baseline"), synthetic=synthetic or [],
                          negatives=negatives or [], sources=sources, force=force, resume=resume)
    extra = {}
    metrics = output / "metrics.json"
    if metrics.is_file():
        test = json.loads(metrics.read_text()).get("test", {})
        if "top1" in test:
            extra["test_top1"] = round(test["top1"], 4)
    run_summary(result, json_, extra)
