"""``dsc study STUDY.toml``: the whole study design in one command (docs/commands/study.md).

CE baseline and SupCon + probe, each with no synthetic data, with normal synthetic data, with OOD negatives
only, and with normal + OOD synthetic data, over N seeds; runs that are already complete are skipped,
interrupted ones resumed; the report ends it. Runs are written to ``<output>/<method>-<variant>-s<seed>/``.

Every arm of a method gets the same training budget by default (``[study] budget = "steps"``): the
optimizer steps the "none" arm takes in its epochs, at the same batch size, so an arm with more images does
not also get more training (docs/training.md#training-budget).

The study file has a ``[study]`` table (inputs, seeds, which methods and variants) and optional
``[train]`` (settings shared by pretrain and baseline), ``[pretrain]``, ``[baseline]``, ``[probe]`` and
``[report]`` tables with the same keys as those commands' settings sections. Study values override
``dsc.toml`` and ``DSC_...`` environment values; each run's seed comes from ``seeds``. ``[report]`` may also
name the pictures the report draws (``PICTURES``: ``dsc report``'s picture options as keys).
"""

from __future__ import annotations

import json
import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dsc.console import count, plural
from dsc.errors import ConfigError, DscError, InputError, MismatchError

log = logging.getLogger(__name__)

METHODS = ("ce", "supcon")
VARIANTS = ("none", "normal", "ood", "normal+ood")
#: What each variant trains with: (normal synthetic positives?, OOD negatives?)
USES = {"none": (False, False), "normal": (True, False), "ood": (False, True), "normal+ood": (True, True)}
BUDGETS = ("steps", "images", "epochs")
SECTIONS = ("study", "train", "pretrain", "baseline", "probe", "report")
#: [report] keys naming the pictures the study's report draws, with the `dsc study` / `dsc report` option of each.
PICTURES = {"results_figure": "--results-figure", "samples": "--samples", "confusion": "--confusion",
            "embedding_map": "--embedding-map", "embedding_run": "--embedding-run"}


class StudySpec(BaseModel):
    """The ``[study]`` table."""

    model_config = ConfigDict(extra="forbid")

    data: Path = Field(description="DATA.h5 made by `dsc subset`")
    synthetic: list[Path] = Field(default_factory=list, description="normal synthetic stores (positives)")
    ood: list[Path] = Field(default_factory=list, description="OOD synthetic stores (negatives)")
    eval_ood: list[Path] = Field(default_factory=list,
                                 description="evaluation-only OOD stores for `dsc probe --ood`")
    output: Path = Field(default=Path("study"), description="folder of the run directories")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    methods: list[Literal["ce", "supcon"]] = Field(default_factory=lambda: list(METHODS), min_length=1)
    variants: list[Literal["none", "normal", "ood", "normal+ood"]] = Field(
        default_factory=lambda: list(VARIANTS), min_length=1)
    budget: Literal["steps", "images", "epochs"] = Field(
        default="steps", description="the training budget of every arm of a method: the optimizer steps (or "
        "images) the 'none' arm takes in its epochs; 'epochs': each arm trains its epochs (more images, more "
        "steps). A steps or images value in [train], [pretrain] or [baseline] is used as it is")
    ce_ood_loss: Literal["extra-class", "outlier-exposure"] = Field(
        default="outlier-exposure", description="how the CE baseline uses OOD images when [baseline] sets none")

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v


class Pictures(BaseModel):
    """The pictures the study's report draws (``[report]`` keys, or ``dsc study`` options that override them);
    relative paths are relative to the working directory, like every path of the study file."""

    model_config = ConfigDict(extra="forbid")

    results_figure: Path | None = None
    samples: Path | None = None
    confusion: Path | None = None
    embedding_map: Path | None = None
    embedding_run: str | None = None

    def paths(self) -> list[Path]:
        """The figure files asked for."""
        return [p for p in (self.results_figure, self.samples, self.confusion, self.embedding_map) if p is not None]


@dataclass
class PlannedRun:
    """One training run of the study (plus its probe for SupCon)."""

    method: str               # "ce" | "supcon"
    variant: str              # "none" | "normal" | "ood" | "normal+ood"
    seed: int
    path: Path
    settings: Any             # BaselineSettings | PretrainSettings
    synthetic: list[Path]
    negatives: list[Path]
    data: Path = Path()
    sources: dict[str, str] = field(default_factory=dict)
    action: str = "run"       # run | resume | probe | skip
    reason: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def command(self) -> str:
        return "baseline" if self.method == "ce" else "pretrain"


@dataclass
class Study:
    """A parsed, validated study file."""

    path: Path
    spec: StudySpec
    sections: dict[str, dict[str, Any]]
    runs: list[PlannedRun] = field(default_factory=list)
    probe_settings: Any = None
    probe_sources: dict[str, str] = field(default_factory=dict)
    report_settings: Any = None
    pictures: Pictures = field(default_factory=Pictures)
    budget_notes: list[str] = field(default_factory=list)   # how each method's training budget was set


def _read(path: Path) -> dict[str, Any]:
    try:
        with Path(path).open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise InputError(f"study file {path} does not exist", hint="see docs/commands/study.md for the format"
                         ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        with Path(path).open("rb") as fh:
            hdf5 = fh.read(8) == b"\x89HDF\r\n\x1a\n"
        if hdf5:
            raise InputError(f"{path} is an HDF5 store, not a study file",
                             hint="dsc study takes a STUDY.toml (see examples/study-demo.toml) whose [study] "
                                  f"table names the store: data = \"{path}\"") from None
        raise ConfigError(f"study file {path} is not valid TOML: {exc}",
                          hint="see examples/study-demo.toml and docs/commands/study.md") from None
    unknown = sorted(set(doc) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"study file {path} has unknown {plural(len(unknown), 'table')} {', '.join(unknown)}",
                          hint=f"allowed tables: {', '.join(SECTIONS)}")
    if "study" not in doc:
        raise ConfigError(f"study file {path} has no [study] table", hint="add [study] with at least data = ...")
    return doc


def _resolve(section: str, values: dict[str, Any], origin: str, study_file: Path) -> tuple[Any, dict[str, str]]:
    """Validated settings of one section and where each value came from (study values show as the file)."""
    from dsc.settings import resolve_settings

    try:
        resolved = resolve_settings({section: values})
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc.message}", hint=exc.hint) from None
    sources = {k.split(".", 1)[1]: (f"study file {study_file}" if v == "command line" else v)
               for k, v in resolved.sources.items() if k.startswith(section + ".")}
    return resolved.section(section), sources


def _settings(section: str, values: dict[str, Any], origin: str) -> Any:
    return _resolve(section, values, origin, Path(origin))[0]


def _dirname(method: str, variant: str, seed: int) -> str:
    return f"{method}-{variant.replace('+', '-')}-s{seed}"


def load_study(path: Path, *, seeds: list[int] | None = None, output: Path | None = None,
               pictures: dict[str, Any] | None = None) -> Study:
    """Parse and validate a study file and plan its runs (every setting is checked before anything runs).

    ``pictures``: values of the command's picture options (``PICTURES``), which replace the file's.
    """
    from dsc.settings import TrainSettings

    doc = _read(Path(path))
    try:
        spec = StudySpec.model_validate(doc["study"])
    except ValidationError as exc:
        msg = "; ".join(f"study.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"study file {path}: {msg}", hint="fix the [study] table") from None
    report = dict(doc.get("report", {}))
    figures = _pictures(report, pictures or {}, Path(path))
    if seeds:
        spec.seeds = list(dict.fromkeys(seeds))
    if output is not None:
        spec.output = output
    if not spec.data.is_file():
        raise InputError(f"study data {spec.data} does not exist", hint="make it with `dsc subset` first")
    for p in [*spec.synthetic, *spec.ood, *spec.eval_ood]:
        if not p.is_file():
            raise InputError(f"study store {p} does not exist", hint="make it with `dsc augment` first")
    for variant in spec.variants:
        wants = [k for k, used in zip(("synthetic", "ood"), USES[variant], strict=True)
                 if used and not getattr(spec, k)]
        if wants:
            raise ConfigError(f"variant {variant!r} needs " + " and ".join(f"{k} = [...]" for k in wants),
                              hint="list the stores in [study] or drop the variant")
    train = doc.get("train", {})
    bad = sorted(set(train) - set(TrainSettings.model_fields))
    if bad:
        from dsc.settings import BaselineSettings, PretrainSettings, did_you_mean

        typos = [f"{k}{did_you_mean(k, TrainSettings.model_fields)}" for k in bad]
        if all("did you mean" in t for t in typos):
            raise ConfigError(f"unknown [train] {plural(len(typos), 'key')} {', '.join(typos)}",
                              hint="[train] holds the settings pretrain and baseline share")
        owner = {k: "pretrain" if k in PretrainSettings.model_fields else "baseline"
                 if k in BaselineSettings.model_fields else None for k in bad}
        unknown = [t for t, k in zip(typos, bad, strict=True) if owner[k] is None]
        if unknown:
            raise ConfigError(f"unknown [train] {plural(len(unknown), 'key')} {', '.join(unknown)}",
                              hint="[train] holds the settings pretrain and baseline share")
        raise ConfigError(f"[train] keys {', '.join(bad)} are not shared training settings",
                          hint="move " + ", ".join(f"{k} to [{owner[k]}]" for k in bad))
    if "seed" in {*train, *doc.get("pretrain", {}), *doc.get("baseline", {}), *doc.get("probe", {})}:
        raise ConfigError("set seeds with [study] seeds = [...], not a seed key", hint="remove the seed key")
    study = Study(Path(path), spec, doc)
    sizes: dict[str, tuple[int, str]] = {}
    for method in spec.methods:
        section = "baseline" if method == "ce" else "pretrain"
        base = {**train, **doc.get(section, {})}
        budget, note = _equal_budget(spec, section, base, Path(path))
        base.update(budget)
        study.budget_notes.append(f"{method}: {note}")
        for variant in spec.variants:
            values = dict(base)
            uses_synthetic, uses_ood = USES[variant]
            negatives = list(spec.ood) if uses_ood else []
            if method == "ce":
                values.setdefault("ood_loss", "none")
                if negatives and values["ood_loss"] == "none":
                    values["ood_loss"] = spec.ce_ood_loss
                elif not negatives:
                    values["ood_loss"] = "none"
            for seed in spec.seeds:
                settings, sources = _resolve(section, {**values, "seed": seed}, f"study file {path} [{section}]",
                                             Path(path))
                settings, sources = _sized(settings, sources, spec.data, sizes)
                if budget:
                    sources.update({k: f"study file {path} (equal budget: {note})" for k in budget})
                study.runs.append(PlannedRun(method, variant, seed, spec.output / _dirname(method, variant, seed),
                                             settings, list(spec.synthetic) if uses_synthetic else [],
                                             negatives, spec.data, sources=sources))
    if "supcon" in spec.methods:
        study.probe_settings, study.probe_sources = _resolve("probe", doc.get("probe", {}),
                                                             f"study file {path} [probe]", Path(path))
    study.report_settings = _settings("report", {k: v for k, v in report.items() if k not in PICTURES},
                                      f"study file {path} [report]")
    study.pictures = figures
    _check_embedding_run(study, "--embedding-run" if (pictures or {}).get("embedding_run") is not None
                         else f"study file {path} [report] embedding_run")
    return study


def _pictures(report: dict[str, Any], given: dict[str, Any], study_file: Path) -> Pictures:
    """The pictures of ``[report]`` and the command's options (which win), each figure's suffix checked
    (.png, .pdf or .svg) so that a wrong one is refused before anything runs."""
    from dsc.report.figures.style import figure_format
    from dsc.settings import ReportSettings, did_you_mean

    unknown = sorted(set(report) - set(ReportSettings.model_fields) - set(PICTURES))
    if unknown:
        keys = [*ReportSettings.model_fields, *PICTURES]
        kinds = {"results": "results_figure", "embedding": "embedding_map"}   # as report["figures"] names them
        raise ConfigError(f"study file {study_file} [report]: unknown {plural(len(unknown), 'key')} "
                          + ", ".join(f"{k}; did you mean {kinds[k]}?" if k in kinds else f"{k}{did_you_mean(k, keys)}"
                                      for k in unknown),
                          hint="[report] holds `dsc report` settings (dsc config show) and the pictures "
                               + ", ".join(PICTURES))
    given = {k: v for k, v in given.items() if v is not None}
    origin = {k: PICTURES[k] if k in given else f"study file {study_file} [report] {k}" for k in PICTURES}
    try:
        pictures = Pictures.model_validate({**{k: report[k] for k in PICTURES if k in report}, **given})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{origin[str(err['loc'][0])]}: {err['msg']} (got {err['input']!r})",
                          hint='give a file name, e.g. results_figure = "study-out/results.png"') from None
    for key in ("results_figure", "samples", "confusion", "embedding_map"):
        if getattr(pictures, key) is not None:
            try:
                figure_format(getattr(pictures, key))
            except InputError as exc:
                raise InputError(f"{origin[key]}: {exc.message}", hint=exc.hint) from None
    if pictures.embedding_run is not None and pictures.embedding_map is None:
        raise ConfigError(f"{origin['embedding_run']} chooses the run of the embedding map, and none is asked for",
                          hint='add embedding_map = "map.png" to [report] (or --embedding-map map.png)')
    return pictures


def _check_embedding_run(study: Study, origin: str) -> None:
    """The embedding map needs a run with embeddings.h5, which only a SupCon run's probe writes: refuse a
    chosen CE run, a name that is no run of the study (nor a folder), or a study without SupCon runs."""
    choice = study.pictures.embedding_run
    if study.pictures.embedding_map is None:
        return
    supcon = [r.name for r in study.runs if r.method == "supcon"]
    if choice is None:
        if not supcon:
            raise ConfigError("the embedding map needs a SupCon run (its probe writes embeddings.h5), and the "
                              "study has none", hint='add "supcon" to [study] methods or drop embedding_map')
        return
    want = Path(choice).expanduser()
    for r in study.runs:
        if choice == r.name or want.resolve() == r.path.resolve():
            if r.method != "supcon":
                raise ConfigError(f"{origin} = {choice!r} is a CE run, which has no embeddings.h5 (only a "
                                  "SupCon run's probe writes it)",
                                  hint=f"choose one of {', '.join(supcon) or 'none: add supcon to methods'}")
            return
    if not (want.is_dir() or (study.spec.output / choice).is_dir()):
        raise ConfigError(f"{origin} = {choice!r} is none of the study's runs",
                          hint=f"SupCon runs (with embeddings.h5): {', '.join(supcon) or 'none'}")


def check_inputs(study: Study) -> None:
    """Open and check every input of every planned run before anything runs (``--dry-run`` too): the data
    and each arm's synthetic and OOD stores (kind, source, overlap, rows of their role), every run's
    backbone and checkpoint, and the evaluation-only OOD stores the probe will read. Images are not read."""
    from dsc.backbones import check_backbone
    from dsc.data.stores import open_inputs

    arms: set[tuple[tuple[Path, ...], tuple[Path, ...]]] = set()
    backbones: set[tuple[str, bool]] = set()
    for r in study.runs:
        arm = (tuple(r.synthetic), tuple(r.negatives))
        if arm not in arms:
            arms.add(arm)
            inputs = open_inputs(r.data, r.synthetic, r.negatives)
            for store in inputs.synthetic:
                _require_rows(store, ood=False)
            for store in inputs.negatives:
                _require_rows(store, ood=True)
        checkpoint = r.settings.checkpoint
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise InputError(f"checkpoint {checkpoint} of {r.name} does not exist",
                             hint="fix checkpoint = ... in the study file")
        backbone = (r.settings.backbone, bool(r.settings.pretrained and checkpoint is None))
        if backbone not in backbones:
            backbones.add(backbone)
            check_backbone(backbone[0], pretrained=backbone[1])
    if "supcon" in study.spec.methods:
        _check_eval_ood(study.spec.data, study.spec.eval_ood)


def _require_rows(store: Any, *, ood: bool) -> None:
    """A store given as synthetic positives (negatives) has in-distribution (OOD) rows."""
    is_ood = store.is_ood
    if not (is_ood if ood else ~is_ood).any():
        key = "ood" if ood else "synthetic"
        raise InputError(f"study {key} store {store.path} has no {'OOD' if ood else 'in-distribution'} rows",
                         hint="list OOD stores (augment --mode ood) in ood = [...] and normal ones in "
                              "synthetic = [...]")


def _check_eval_ood(data_path: Path, paths: list[Path]) -> None:
    """The stores of ``eval_ood``: made from this DATA.h5's held-out images, with OOD rows (as the probe needs)."""
    from dsc.evaluate.suite import ood_indices
    from dsc.store import open_store
    from dsc.store.reader import check_same_source

    data = open_store(data_path, kind="data")
    for path in paths:
        store = open_store(path, kind="synthetic")
        check_same_source(data, store, training=False)
        if not store.evaluation_only:
            raise InputError(f"study eval_ood store {path} was generated from training images, not held-out ones",
                             hint="make test OOD data with `dsc augment --mode ood --split test`, or list the "
                                  "store in ood = [...] to train with it")
        if len(ood_indices(store)) == 0:
            raise InputError(f"study eval_ood store {path} has no OOD rows (is_ood)",
                             hint="list a store made with `dsc augment --mode ood --split test`")


def _sized(settings: Any, sources: dict[str, str], data: Path, cache: dict[str, tuple[int, str]]
           ) -> tuple[Any, dict[str, str]]:
    """``settings`` with the image size the run will train at when the study leaves it out (the store's
    resolution, capped at the backbone's native size: dsc/train/image_size.py), so that the settings of a
    finished run match the plan."""
    if settings.image_size is not None:
        return settings, sources
    if settings.backbone not in cache:
        from dsc.store import open_store
        from dsc.train.image_size import native_size, resolve_image_size, store_resolution

        side = store_resolution(open_store(data, kind="data"))
        cache[settings.backbone] = resolve_image_size(None, side, lambda: native_size(settings.backbone))
    size, note = cache[settings.backbone]
    return settings.model_copy(update={"image_size": size}), {**sources, "image_size": note}


def _equal_budget(spec: StudySpec, section: str, values: dict[str, Any], study_file: Path
                  ) -> tuple[dict[str, int], str]:
    """The budget every arm of one method trains with: ``{"steps": N}`` or ``{"images": N}`` derived from
    the "none" arm (real train images only, no negatives) in its epochs, or ``{}`` when the study file or
    ``[study] budget = "epochs"`` decides; and a sentence saying which."""
    settings, _ = _resolve(section, values, f"study file {study_file} [{section}]", study_file)
    batch = settings.batch_size
    if settings.budget != "epochs":
        amount = settings.steps if settings.budget == "steps" else settings.images
        return {}, (f"every arm trains {count(amount, settings.budget.rstrip('s'))} (batch {batch}), as the study "
                    "file sets")
    if spec.budget == "epochs":
        return {}, (f"every arm trains {count(settings.epochs, 'epoch')} (batch {batch}): arms with more images take "
                    "more optimizer steps ([study] budget = \"epochs\")")
    from dsc.data.samplers import BatchPlan
    from dsc.data.stores import real_rows
    from dsc.store import open_store
    from dsc.train.budget import pass_sizes

    n_train = len(real_rows(open_store(spec.data, kind="data"), "train"))
    if n_train == 0:
        raise InputError(f"study data {spec.data} has no train rows", hint="make it with `dsc subset` (train split)")
    import torch

    sizes = pass_sizes(BatchPlan(torch.zeros(n_train, dtype=torch.int64), 0, batch))
    if spec.budget == "steps":
        amount = settings.epochs * len(sizes)
        how = f"{count(settings.epochs, 'epoch')} x {count(len(sizes), 'step')}"
    else:
        amount = settings.epochs * sum(sizes)
        how = f"{count(settings.epochs, 'epoch')} x {count(sum(sizes), 'image')}"
    what = "optimizer " + plural(amount, spec.budget.rstrip("s")) if spec.budget == "steps" else plural(amount, "image")
    return {spec.budget: amount}, (f"every arm trains {amount} {what} of batch {batch}, the 'none' arm's {how} on "
                                   f"{count(n_train, 'train image')}; evaluated in {count(settings.epochs, 'round')}")


def plan(study: Study, *, force: bool = False) -> Study:
    """Decide per run: run, resume, probe only, or skip (complete with the same settings)."""
    from dsc.report.runs import load_run
    from dsc.train.checkpoint import has_checkpoint
    from dsc.train.run_dir import settings_diff, settings_hash

    fingerprints: dict[Path, str] = {}
    for r in study.runs:
        if force or not (r.path / "run.json").is_file():
            r.action, r.reason = "run", "forced" if force and r.path.exists() else "new"
            continue
        existing = load_run(r.path)
        info = existing.info
        wanted = r.settings.model_dump(mode="json")
        if info.get("settings_hash") and info.get("settings_hash") != settings_hash(wanted):
            diff = settings_diff(info.get("settings", {}), wanted) or ["settings hash differs (another dsc version?)"]
            raise MismatchError(f"{r.path} was made with other settings ({'; '.join(diff[:6])})",
                                hint="restore the study's settings, choose another output, or pass --force "
                                "to redo the study's runs")
        stale = _changed_inputs(info.get("inputs") or {}, r, fingerprints)
        if stale:
            raise MismatchError(f"{r.path} was made from other inputs ({'; '.join(stale)})",
                                hint="pass --force to redo the study's runs on the current stores, or choose "
                                "another output")
        status = info.get("status")
        if status == "complete":
            reprobe = _changed_probe(study, r, fingerprints) if existing.complete and r.method == "supcon" else []
            if reprobe:
                r.action, r.reason = "probe", f"probe changed: {'; '.join(reprobe[:4])}"
            elif existing.complete:
                r.action, r.reason = "skip", "complete"
            elif r.method == "supcon":
                r.action, r.reason = "probe", "trained, not probed"
            else:
                r.action, r.reason = "run", "no metrics.json"
        elif has_checkpoint(r.path, "last"):
            r.action, r.reason = "resume", f"status {status}"
        else:
            r.action, r.reason = "run", f"status {status}, no checkpoint"
    return study


#: Probe settings that do not change its results (where it runs, how many images per feature batch).
PROBE_RESULT_FREE = ("device", "eval_batch_size")


def _changed_probe(study: Study, r: PlannedRun, cache: dict[Path, str]) -> list[str]:
    """How the study's probe of ``r`` differs from the recorded one (settings, evaluation-only OOD stores).

    A probe without recorded settings (hand-made or older) counts as unchanged.
    """
    from dsc.train.run_dir import settings_diff

    metrics = json.loads((r.path / "probe" / "metrics.json").read_text())  # load_run has read it already
    prov = metrics.get("provenance") if isinstance(metrics, dict) else None
    recorded = prov.get("settings") if isinstance(prov, dict) else None
    if not isinstance(recorded, dict):
        return []
    wanted = study.probe_settings.model_copy(update={"seed": r.seed}).model_dump(mode="json")
    changes = [c for c in settings_diff(recorded, wanted) if c.split(":", 1)[0] not in PROBE_RESULT_FREE]
    ood = (prov.get("inputs") or {}).get("ood")
    if isinstance(ood, list):
        old = sorted(str(x.get("fingerprint", "")) for x in ood if isinstance(x, dict))
        new = sorted(_fingerprint(p, cache) for p in study.spec.eval_ood)
        if old != new:
            changes.append(f"ood stores: {', '.join(old) or 'none'} -> {', '.join(new) or 'none'}")
    return changes


def _fingerprint(path: Path, cache: dict[Path, str]) -> str:
    """A store's fingerprint, opened once per plan."""
    from dsc.store import open_store

    if path not in cache:
        cache[path] = open_store(path).fingerprint
    return cache[path]


def _changed_inputs(recorded: dict[str, Any], r: PlannedRun, cache: dict[Path, str]) -> list[str]:
    """Inputs whose fingerprint differs from what the existing run recorded (data, synthetic, negatives)."""
    def fp(path: Path) -> str:
        return _fingerprint(path, cache)

    out = []
    data = recorded.get("data")
    if isinstance(data, dict) and data.get("fingerprint") and data["fingerprint"] != fp(r.data):
        out.append(f"data: {data['fingerprint']} -> {fp(r.data)}")
    for key, paths in (("synthetic", r.synthetic), ("negatives", r.negatives)):
        old = sorted(x.get("fingerprint", "") for x in recorded.get(key) or [] if isinstance(x, dict))
        new = sorted(fp(p) for p in paths)
        if key in recorded and old != new:
            out.append(f"{key}: {', '.join(old) or 'none'} -> {', '.join(new) or 'none'}")
    return out


def execute(study: Study, *, keep_going: bool = False) -> list[tuple[PlannedRun, str]]:
    """Carry out the plan in order; returns (run, error) for runs that failed (only with keep_going)."""
    from dsc.console import err

    failures: list[tuple[PlannedRun, str]] = []
    todo = [r for r in study.runs if r.action != "skip"]
    if todo:
        for note in study.budget_notes:
            err.print(f"[bold]study[/] budget {note}", highlight=False)
    for i, r in enumerate(todo, 1):
        err.print(f"[bold]study[/] {i}/{len(todo)}: {r.name} ({r.action}: {r.reason})", highlight=False)
        try:
            if r.action in ("run", "resume"):
                _train(study, r)
            if r.method == "supcon":
                _probe(study, r)
        except DscError as exc:
            if not keep_going:
                raise
            log.error("%s failed: %s", r.name, exc)
            failures.append((r, str(exc)))
    return failures


def _train(study: Study, r: PlannedRun) -> None:
    kwargs = dict(synthetic=r.synthetic, negatives=r.negatives, sources=r.sources, force=r.action == "run",
                  resume=r.action == "resume")
    r.path.parent.mkdir(parents=True, exist_ok=True)
    if r.method == "ce":
        from dsc.train.baseline import baseline

        baseline(study.spec.data, r.path, r.settings, **kwargs)
    else:
        from dsc.train.pretrain import pretrain

        pretrain(study.spec.data, r.path, r.settings, **kwargs)


def _probe(study: Study, r: PlannedRun) -> None:
    from dsc.probe import probe

    settings = study.probe_settings.model_copy(update={"seed": r.seed})   # the probe follows the run's seed
    sources = {**study.probe_sources, "seed": f"study file {study.path} (the run's seed)"}
    probe(r.path, settings, ood=study.spec.eval_ood, sources=sources, force=True)


def plan_rows(study: Study) -> list[dict[str, Any]]:
    """The plan as JSON-able rows (for --dry-run)."""
    return [{"run": str(r.path), "method": r.method, "variant": r.variant, "seed": r.seed, "action": r.action,
             "reason": r.reason, "synthetic": [str(p) for p in r.synthetic],
             "negatives": [str(p) for p in r.negatives], "budget": budget_text(r.settings)} for r in study.runs]


def budget_text(settings: Any) -> str:
    """"240 steps", "9600 images" or "8 epochs"."""
    kind = settings.budget
    return f"{getattr(settings, kind)} {kind}"
