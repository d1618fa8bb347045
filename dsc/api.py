"""The verbs of the public Python API (``dsc.subset(...)`` ... ``dsc.study(...)``; docs/api.md).

One function per stage, with the command's inputs as arguments and its settings as keyword arguments named
like its options (``--weight-decay`` -> ``weight_decay=``). Settings resolve as on the command line: keyword
arguments > ``DSC_<SECTION>__<KEY>`` environment > ``config`` (default ``./dsc.toml``) > defaults. Each verb
calls the library function its command calls and returns what that function returns; nothing is printed
but the progress bars and log lines the library writes. Heavy imports (torch, diffusers, h5py) happen inside
the verbs, so importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the result types; their modules import numpy, h5py or torch
    from dsc.augment import AugmentResult
    from dsc.diffusion.tokens import TokenManifest
    from dsc.probe import ProbeResult
    from dsc.report.build import ReportResult
    from dsc.study import StudyResult
    from dsc.subset import SubsetResult
    from dsc.train.common import Result as TrainResult

PathLike = str | Path


@contextmanager
def _command() -> Iterator[None]:
    """One verb call is one command: a failure removes the output folders it created and left without work
    (as the CLI does, so a retry is not refused by an empty leftover)."""
    from dsc import outputs

    outputs.forget_claims()
    try:
        yield
    except BaseException:
        outputs.discard_unused()
        raise


def _resolve(section: str, values: dict[str, Any], config: PathLike | None, *, full_keys: bool = False
             ) -> tuple[Any, dict[str, str]]:
    """The section's settings (unknown keys refused with a did-you-mean) and where each value came from."""
    from dsc.settings import resolve_settings

    resolved = resolve_settings({section: values}, config_file=Path(config) if config is not None else None)
    prefix = f"{section}."
    sources = {(k if full_keys else k[len(prefix):]): v for k, v in resolved.sources.items() if k.startswith(prefix)}
    return resolved.section(section), sources


def _paths(values: Sequence[PathLike] | PathLike | None) -> list[Path]:
    if values is None:
        return []
    return [Path(values)] if isinstance(values, str | Path) else [Path(v) for v in values]


def subset(output: PathLike, *, force: bool = False, config: PathLike | None = None, **settings: Any) -> SubsetResult:
    """Choose classes of a dataset and write them to a DATA.h5 store (``dsc subset``).

    ``settings``: the ``[subset]`` keys, e.g. ``dataset="toyparts"``, ``classes=2``, ``resolution=32``,
    ``options={"objects_per_class": 6}`` (``--option``), ``split=(0.7, 0.15, 0.15)``. Returns a
    ``SubsetResult`` (``path``, ``n``, ``fingerprint``, ``summary``, ``timings``)."""
    from dsc.subset import build_subset

    with _command():
        section, sources = _resolve("subset", settings, config, full_keys=True)
        return build_subset(section, Path(output), force=force, sources=sources)


def invert(data: PathLike, output: PathLike, *, classes: Sequence[str] | None = None, resume: bool = False,
           force: bool = False, config: PathLike | None = None, **settings: Any) -> TokenManifest:
    """Personalize the model to DATA.h5's classes into the folder ``output`` (``dsc invert``): one
    textual-inversion token per class, a LoRA (``method="lora"``) or both (``method="ti+lora"``).

    ``settings``: the ``[invert]`` keys (``model="tiny"``, ``steps``, ``num_vectors``, ``method``,
    ``lora_rank`` ...). Returns the ``TokenManifest`` of ``output/tokens.json`` (``classes``: token, loss,
    steps per class; ``lora``: the LoRA file's hash and settings)."""
    from dsc.diffusion.invert import run_invert

    with _command():
        section, sources = _resolve("invert", settings, config)
        return run_invert(Path(data), Path(output), section, classes=list(classes) if classes else None,
                          resume=resume, force=force, settings_sources=sources)


def augment(data: PathLike, output: PathLike, *, preview: int | None = None, resume: bool = False,
            force: bool = False, config: PathLike | None = None, **settings: Any) -> AugmentResult | Path:
    """Generate synthetic variants of DATA.h5's images into the store ``output`` (``dsc augment``).

    ``settings``: the ``[augment]`` keys (``model``, ``tokens``, ``mode="normal"|"ood"``, ``strength=[0.5]``,
    ``per_image``, ``filter`` ...). Returns an ``AugmentResult``; with ``preview=N`` no store is written and
    the path of the grid of N real images and their variants is returned."""
    from dsc.augment import run_augment, run_preview
    from dsc.registry import get_plugin

    with _command():
        section, sources = _resolve("augment", settings, config, full_keys=True)
        get_plugin("augmenter", section.strategy)  # an unknown strategy fails before the store or model is read
        if preview is not None:
            return run_preview(Path(data), Path(output), section, sources, n=preview, force=force)
        return run_augment(Path(data), Path(output), section, sources, force=force, resume=resume)


def pretrain(data: PathLike, output: PathLike, *, synthetic: Sequence[PathLike] = (),
             negatives: Sequence[PathLike] = (), resume: bool = False, force: bool = False,
             config: PathLike | None = None, **settings: Any) -> TrainResult:
    """Supervised contrastive pre-training into the run folder ``output`` (``dsc pretrain``).

    ``synthetic``: normal synthetic stores (positives); ``negatives``: OOD stores. ``settings``: the
    ``[pretrain]`` keys (``backbone``, ``epochs`` or ``steps``, ``batch_size``, ``image_size`` ...). Returns
    the run's ``TrainResult`` (``run_dir``, ``status``, ``epochs``, ``best_epoch``, ``best_val``, ``metrics``)."""
    return _train("pretrain", data, output, synthetic, negatives, resume, force, config, settings)


def baseline(data: PathLike, output: PathLike, *, synthetic: Sequence[PathLike] = (),
             negatives: Sequence[PathLike] = (), resume: bool = False, force: bool = False,
             config: PathLike | None = None, **settings: Any) -> TrainResult:
    """Cross-entropy classifier into the run folder ``output`` (``dsc baseline``); the best epoch by val is
    evaluated on test into ``output/metrics.json``. Arguments and result as :func:`pretrain`, settings from
    ``[baseline]`` (``ood_loss``, ``label_smoothing``, ``corruptions`` ...)."""
    return _train("baseline", data, output, synthetic, negatives, resume, force, config, settings)


def _train(command: str, data: PathLike, output: PathLike, synthetic: Sequence[PathLike],
           negatives: Sequence[PathLike], resume: bool, force: bool, config: PathLike | None,
           settings: dict[str, Any]) -> TrainResult:
    from dsc.backbones import check_backbone

    with _command():
        section, sources = _resolve(command, settings, config)
        check_backbone(section.backbone, pretrained=section.pretrained and not section.checkpoint)
        if command == "pretrain":
            from dsc.train.pretrain import pretrain as run
        else:
            from dsc.train.baseline import baseline as run
        return run(Path(data), Path(output), section, synthetic=_paths(synthetic), negatives=_paths(negatives),
                   sources=sources, force=force, resume=resume)


def probe(run: PathLike, *, ood: Sequence[PathLike] = (), recompute_features: bool = False,
          allow_incomplete: bool = False, force: bool = False, config: PathLike | None = None,
          **settings: Any) -> ProbeResult:
    """Linear probe on the frozen encoder of a pretrain run, with the evaluation suite (``dsc probe``).

    ``ood``: evaluation-only OOD stores. ``settings``: the ``[probe]`` keys (``epochs``, ``lr``,
    ``corruptions=False`` for ``--no-corruptions``, ``severities=[1, 3]`` ...). Returns a ``ProbeResult``
    (``metrics``: the dict written to ``RUN/probe/metrics.json``, ``metrics_path``)."""
    from dsc.probe import probe as run_probe

    with _command():
        section, sources = _resolve("probe", settings, config)
        return run_probe(Path(run), section, ood=_paths(ood), sources=sources, force=force,
                         recompute_features=recompute_features, allow_incomplete=allow_incomplete)


def report(runs: Sequence[PathLike] | PathLike = (), *, data: PathLike | None = None,
           synthetic: Sequence[PathLike] = (), quality: bool = True, encoder: PathLike | None = None,
           classifier: PathLike | None = None, results_figure: PathLike | None = None,
           samples: PathLike | None = None, confusion: PathLike | None = None,
           embedding_map: PathLike | None = None, embedding_run: str | None = None,
           markdown: PathLike | None = None, html: PathLike | None = None, allow_unequal_budget: bool = False,
           force: bool = False, config: PathLike | None = None, **settings: Any) -> ReportResult:
    """Compare runs across seeds; assess synthetic stores; draw pictures (``dsc report``).

    ``runs``: run folders or folders holding runs. ``settings``: the ``[report]`` keys (``baseline``,
    ``primary_metric``, ``per_class`` ...). Returns a ``ReportResult`` (``report``: the JSON dict of
    ``dsc report --json``, ``sections``: its tables, ``written``: the files written)."""
    from dsc.errors import InputError

    run_paths, stores = _paths(runs), _paths(synthetic)
    if not run_paths and not stores and samples is None:
        raise InputError("nothing to report: no RUN given",
                         hint="give run directories, or synthetic=[AUG.h5] with data=DATA.h5")
    if (stores or samples is not None) and data is None:
        raise InputError("synthetic stores and samples need the real images", hint="add data=DATA.h5")
    figures = [Path(p) if p is not None else None for p in (results_figure, samples, confusion, embedding_map)]
    with _command():
        section, _ = _resolve("report", settings, config)
        from dsc.report.pictures import check_report_outputs

        check_report_outputs(figures, _opt_path(markdown), _opt_path(html), force=force)
        from dsc.report import Pictures, build_report

        return build_report(run_paths, section, allow_unequal_budget=allow_unequal_budget,
                            data=Path(data) if data is not None else None, synthetic=stores, quality=quality,
                            encoder=Path(encoder) if encoder is not None else None,
                            classifier=Path(classifier) if classifier is not None else None,
                            pictures=Pictures(*figures, embedding_run), markdown=_opt_path(markdown),
                            html=_opt_path(html))


def _opt_path(path: PathLike | None) -> Path | None:
    return Path(path) if path is not None else None


def study(file: PathLike, *, seeds: Sequence[int] | None = None, output: PathLike | None = None,
          dry_run: bool = False, keep_going: bool = False, report: bool = True, markdown: PathLike | None = None,
          html: PathLike | None = None, results_figure: PathLike | None = None, samples: PathLike | None = None,
          confusion: PathLike | None = None, embedding_map: PathLike | None = None,
          embedding_run: str | None = None, force: bool = False, executor: str = "local",
          jobs: int | None = None) -> StudyResult:
    """Run the study of a TOML file (``dsc study``): every configuration over its seeds, complete runs
    skipped, interrupted ones resumed (``force`` redoes them), then the report. ``executor="processes"`` runs
    ``jobs`` runs at a time in worker processes. Returns a ``StudyResult``."""
    from dsc.study import run_study

    pictures = {"results_figure": results_figure, "samples": samples, "confusion": confusion,
                "embedding_map": embedding_map, "embedding_run": embedding_run}
    with _command():
        return run_study(Path(file), seeds=seeds, output=_opt_path(output), pictures=pictures, dry_run=dry_run,
                         keep_going=keep_going, report=report, markdown=_opt_path(markdown), html=_opt_path(html),
                         force=force, executor=executor, jobs=jobs)
