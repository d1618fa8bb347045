"""Read a study file and plan its runs: every setting is checked before anything runs (``dsc study``)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dsc.console import plural
from dsc.errors import ConfigError, InputError
from dsc.study.budget import equal_budget
from dsc.study.pictures import check_embedding_run, resolve_pictures
from dsc.study.spec import PICTURES, SECTIONS, USES, PlannedRun, SlurmSpec, Study, StudySpec
from dsc.study.stages import Stages, cell_seeds, load_stages, recipes_of, resolve_section


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
    return resolve_section(section, values, origin, source=f"study file {study_file}")


def _settings(section: str, values: dict[str, Any], origin: str) -> Any:
    return _resolve(section, values, origin, Path(origin))[0]


def _dirname(method: str, variant: str, seed: int, shots: int | None = None) -> str:
    cell = f"-k{shots}" if shots is not None else ""
    return f"{method}-{variant.replace('+', '-')}{cell}-s{seed}"


def load_study(path: Path, *, seeds: list[int] | None = None, output: Path | None = None,
               pictures: dict[str, Any] | None = None) -> Study:
    """Parse and validate a study file and plan its runs (every setting is checked before anything runs).

    ``pictures``: values of the command's picture options (``PICTURES``), which replace the file's.
    """
    doc = _read(Path(path))
    try:
        spec = StudySpec.model_validate(doc["study"])
    except ValidationError as exc:
        msg = "; ".join(f"study.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"study file {path}: {msg}", hint="fix the [study] table") from None
    report = dict(doc.get("report", {}))
    figures = resolve_pictures(report, pictures or {}, Path(path))
    if seeds:
        spec.seeds = list(dict.fromkeys(seeds))
    if output is not None:
        spec.output = output
    _default_vary(spec, doc, Path(path))
    stages = load_stages(spec, doc, Path(path))
    _check_stores(spec, stages)
    spec.eval_ood = [stages.evaluation[str(p)].path if str(p) in stages.evaluation else p for p in spec.eval_ood]
    train = doc.get("train", {})
    _check_train_keys(train)
    keys = {*train, *doc.get("pretrain", {}), *doc.get("baseline", {}), *doc.get("probe", {})}
    if "seed" in keys or "few_shot_seed" in keys:
        raise ConfigError("set seeds with [study] seeds = [...] (and what they change with vary), not a "
                          f"{'seed' if 'seed' in keys else 'few_shot_seed'} key", hint="remove the key")
    study = Study(Path(path), spec, doc, stages=stages)
    study.slurm = _slurm(doc.get("slurm", {}), path)
    if spec.data.is_file():
        _plan_runs(study, train, path)
    else:  # built from [subset] first: the budget and image size of each run depend on it
        for method in spec.methods:  # the settings are still checked now, before the data is built
            section = "baseline" if method == "ce" else "pretrain"
            _resolve(section, {**train, **doc.get(section, {})}, f"study file {path} [{section}]", Path(path))
        study.pending_runs = len(spec.shots) * len(spec.methods) * len(spec.arm_names) * len(spec.seeds)
    if "supcon" in spec.methods:
        study.probe_settings, study.probe_sources = _resolve("probe", doc.get("probe", {}),
                                                             f"study file {path} [probe]", Path(path))
    study.report_settings = _settings("report", {k: v for k, v in report.items() if k not in PICTURES},
                                      f"study file {path} [report]")
    study.pictures = figures
    if not study.pending_runs:  # else checked when the study is read again after building its data
        check_embedding_run(study, "--embedding-run" if (pictures or {}).get("embedding_run") is not None
                            else f"study file {path} [report] embedding_run")
    return study


def _slurm(table: dict[str, Any], path: Path) -> SlurmSpec:
    try:
        return SlurmSpec.model_validate(table)
    except ValidationError as exc:
        msg = "; ".join(f"slurm.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"study file {path}: {msg}", hint="fix the [slurm] table (docs/commands/study.md#executors)"
                          ) from None


def _default_vary(spec: StudySpec, doc: dict[str, Any], path: Path) -> None:
    """``[study] vary`` by default: everything a seed can change (the synthetic stores only when the study
    builds them); 'synthetic' is refused when every store is given."""
    builds = bool(recipes_of(doc, path))
    if spec.vary is None:
        spec.vary = ["train", "few-shot draw", "synthetic"] if builds else ["train", "few-shot draw"]
    elif "synthetic" in spec.vary and not builds:
        raise ConfigError(f"study file {path}: vary lists 'synthetic', but the study's synthetic stores are given, "
                          "not built by the study, so a seed cannot change them",
                          hint="describe the stores as [augment.NAME] recipes (docs/commands/study.md#the-whole-"
                          "pipeline), or leave 'synthetic' out")


def _check_stores(spec: StudySpec, stages: Stages) -> None:
    """The study's stores exist (or are built by it), and every variant has the stores it trains with."""
    if not spec.data.is_file() and stages.data is None:
        raise InputError(f"study data {spec.data} does not exist",
                         hint="make it with `dsc subset` first, or describe it in a [subset] table")
    for p in [q for q in [*spec.synthetic, *spec.ood, *spec.eval_ood] if str(q) not in stages.recipes]:
        if not p.is_file():
            raise InputError(f"study store {p} does not exist", hint="make it with `dsc augment` first, or "
                             "describe it as an [augment.NAME] recipe and list the name")
    for variant in spec.variants if spec.arms is None else []:   # named arms are checked by StudySpec
        wants = [k for k, used in zip(("synthetic", "ood"), USES[variant], strict=True)
                 if used and not getattr(spec, k)]
        if wants:
            raise ConfigError(f"variant {variant!r} needs " + " and ".join(f"{k} = [...]" for k in wants),
                              hint="list the stores in [study] or drop the variant")


def _check_train_keys(train: dict[str, Any]) -> None:
    """``[train]`` holds only the settings pretrain and baseline share (typos and misplaced keys refused)."""
    from dsc.settings import TrainSettings

    bad = sorted(set(train) - set(TrainSettings.model_fields))
    if not bad:
        return
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


def _plan_runs(study: Study, train: dict[str, Any], path: Path) -> None:
    """One planned run per few-shot cell, method, variant and seed, the arms of a method in one cell with the
    same training budget."""
    spec, doc = study.spec, study.sections
    sizes: dict[str, tuple[int, str]] = {}
    for shots in spec.shots:
        for method in spec.methods:
            section = "baseline" if method == "ce" else "pretrain"
            base = {**train, **doc.get(section, {})}
            if shots is not None:
                _check_one_few_shot(base, section, path)
                base["examples_per_class"] = shots
            budget, note = equal_budget(spec, _resolve(section, base, f"study file {path} [{section}]",
                                                       Path(path))[0])
            base.update(budget)
            study.budget_notes.append(f"{method}{f' (k={shots})' if shots is not None else ''}: {note}")
            for variant in spec.arm_names:
                _plan_arm(study, section, method, variant, shots, base, budget, note, sizes, path)


def _check_one_few_shot(base: dict[str, Any], section: str, path: Path) -> None:
    if "examples_per_class" in base:
        raise ConfigError(f"study file {path}: examples_per_class is set both in [study] (the sweep) and in "
                          f"[train] or [{section}]", hint="keep the [study] list and remove the other key")


def _plan_arm(study: Study, section: str, method: str, variant: str, shots: int | None, base: dict[str, Any],
              budget: dict[str, int], note: str, sizes: dict[str, tuple[int, str]], path: Path) -> None:
    """The planned runs of one arm in one cell, one per seed."""
    spec = study.spec
    synthetic, negatives = spec.arm_stores()[variant]
    values = _method_values(base, method, negatives, spec)
    if spec.arms is not None:   # a named arm: recorded as the run's synthetic-data label (the report's arm)
        values["arm"] = variant
    for seed in spec.seeds:
        settings, sources = _resolve(section, {**values, **_seeds(spec, seed, shots)}, f"study file {path} "
                                     f"[{section}]", Path(path))
        settings, sources = _sized(settings, sources, spec.data, sizes)
        if budget:
            sources.update({k: f"study file {path} (equal budget: {note})" for k in budget})
        cell = cell_seeds(spec, shots, seed)
        study.runs.append(PlannedRun(method, variant, seed, spec.output / _dirname(method, variant, seed, shots),
                                     settings, _stores(study, synthetic, cell),
                                     _stores(study, negatives, cell), spec.data, sources=sources,
                                     examples_per_class=shots))


def _stores(study: Study, entries: list[Path], cell: Any) -> list[Path]:
    """The stores of one run: given paths as they are, recipe names as the store built for the run's cell."""
    stages = study.stages
    return [stages.store(str(p), cell) if stages is not None and (str(p), cell) in stages.stores else p
            for p in entries]


def _seeds(spec: StudySpec, seed: int, shots: int | None) -> dict[str, int]:
    """The seeds of one run: the training seed, and in a sweep whose draw ``[study] vary`` leaves out, the
    first seed's draw for every seed."""
    out = {"seed": seed}
    if shots is not None and "few-shot draw" not in spec.vary:
        out["few_shot_seed"] = spec.seeds[0]
    return out


def _method_values(base: dict[str, Any], method: str, negatives: list[Path], spec: StudySpec) -> dict[str, Any]:
    """An arm's settings: the CE baseline uses its OOD loss (``[study] ce_ood_loss`` when the file sets none)
    only when the arm has negatives."""
    values = dict(base)
    if method == "ce":
        values.setdefault("ood_loss", "none")
        if negatives and values["ood_loss"] == "none":
            values["ood_loss"] = spec.ce_ood_loss
        elif not negatives:
            values["ood_loss"] = "none"
    return values


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
