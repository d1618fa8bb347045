"""The pictures a study's report draws: ``[report]`` keys and the command's options (``dsc study``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dsc.console import plural
from dsc.errors import ConfigError, InputError
from dsc.study.spec import PICTURES, Pictures, Study


def resolve_pictures(report: dict[str, Any], given: dict[str, Any], study_file: Path) -> Pictures:
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


def check_embedding_run(study: Study, origin: str) -> None:
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
