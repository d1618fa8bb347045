"""``dsc probe RUN/``: linear probe on frozen features of a pretrain run, plus the evaluation suite."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dsc.cli.common import Force, JsonFlag, print_json, resolve, split_csv

P_OPT, P_EVAL, P_RUN = "Probe training", "Evaluation", "Run"


def _opt(help_: str, panel: str = P_OPT, *decls: str) -> Any:
    return typer.Option(*decls, help=help_, rich_help_panel=panel, show_default=False)


def probe(
    run: Annotated[Path, typer.Argument(help="Run directory written by `dsc pretrain`.", show_default=False)],
    epochs: Annotated[int | None, _opt("Probe epochs (on cached features; default 100).")] = None,
    lr: Annotated[float | None, _opt("Peak learning rate of SGD (cosine schedule; default 0.1).")] = None,
    batch_size: Annotated[int | None, _opt("Probe mini-batch size (default 256).")] = None,
    weight_decay: Annotated[float | None, _opt("Weight decay of the linear layer (default 0).")] = None,
    with_synthetic: Annotated[bool | None, _opt(
        "Also train the probe on the run's synthetic positives.", P_OPT,
        "--with-synthetic/--without-synthetic")] = None,
    checkpoint: Annotated[str | None, _opt("Encoder checkpoint: best (by val) or last.")] = None,
    seed: Annotated[int | None, _opt("Seed of the probe's initialisation, shuffling and corruptions.",
                                     P_RUN)] = None,
    ood: Annotated[list[Path] | None, _opt(
        "Evaluation-only OOD store (`dsc augment --mode ood --split test`); repeatable.", P_EVAL,
        "--ood")] = None,
    no_corruptions: Annotated[bool, typer.Option(
        "--no-corruptions", help="Skip the corruption-robustness evaluation.", rich_help_panel=P_EVAL)] = False,
    severities: Annotated[str | None, _opt("Corruption severities, comma-separated (default 1,3,5).",
                                           P_EVAL)] = None,
    knn_k: Annotated[int | None, _opt("k of the k-NN OOD score (default 5).", P_EVAL)] = None,
    eval_batch_size: Annotated[int | None, _opt("Images per batch for feature extraction.", P_RUN)] = None,
    device: Annotated[str | None, _opt("auto, cpu, cuda, cuda:1, ...", P_RUN)] = None,
    recompute_features: Annotated[bool, typer.Option(
        "--recompute-features", help="Recompute RUN/embeddings.h5 even when it matches the checkpoint and data.",
        rich_help_panel=P_RUN)] = False,
    allow_incomplete: Annotated[bool, typer.Option(
        "--allow-incomplete", help="Probe a run whose training did not finish (interrupted, failed); "
        "`dsc report` marks it.", rich_help_panel=P_RUN)] = False,
    force: Force = False,
    json_: JsonFlag = False,
) -> None:
    """Train a linear classifier on the frozen encoder's features (cached in RUN/embeddings.h5), select
    it on val, and write test metrics, robustness and OOD detection to RUN/probe/metrics.json."""
    from dsc.cli.checks import require

    require("RUN", run, folder=True)
    require("--ood", ood)
    resolved = resolve("probe", epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
                       with_synthetic=with_synthetic, checkpoint=checkpoint, seed=seed,
                       corruptions=False if no_corruptions else None, severities=split_csv(severities, int),
                       knn_k=knn_k, eval_batch_size=eval_batch_size, device=device)
    from dsc import console

    if json_:
        console.spinners(False)
    with console.status("importing torch…"):
        from dsc.probe import probe as run_probe

    sources = {k.split(".", 1)[1]: v for k, v in resolved.sources.items() if k.startswith("probe.")}
    result = run_probe(run, resolved.section("probe"), ood=ood or [], sources=sources, force=force,
                       recompute_features=recompute_features, allow_incomplete=allow_incomplete)
    if json_:
        print_json(result.metrics)
    else:
        from dsc.cli.render import render_probe

        render_probe(result)
