"""The whole ``dsc study`` command as one library call, what both ``dsc study`` and ``dsc.study()`` run:
the study file planned, every input and output checked, the runs carried out, then the report."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dsc.report.build import ReportResult
    from dsc.study.spec import Study


@dataclass
class StudyResult:
    """What a study did: the plan (each run, its action and why), how the training budgets were set, the
    runs that failed (with ``keep_going``) and the report (None with ``dry_run`` or ``report=False``)."""

    plan: list[dict[str, Any]]
    budget: list[str]
    output: Path  # the study's output folder
    pictures: list[Path] = field(default_factory=list)  # the figure files asked for
    failed: list[tuple[Path, str]] = field(default_factory=list)
    report: ReportResult | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)   # what the study builds before its runs
    pending_runs: int = 0   # runs planned once the data is built (a dry run before it exists)


def run_study(file: Path, *, seeds: Sequence[int] | None = None, output: Path | None = None,
              pictures: dict[str, Any] | None = None, dry_run: bool = False, keep_going: bool = False,
              report: bool = True, markdown: Path | None = None, html: Path | None = None, force: bool = False,
              command: str | None = None, executor: str = "local", jobs: int | None = None) -> StudyResult:
    """Plan the study of ``file`` (``seeds``, ``output`` and ``pictures`` replace the file's), check every
    input of every run and every output path before anything runs (``dry_run`` stops there), carry out the
    runs (``force`` redoes complete ones; ``executor`` and ``jobs``: dsc/study/executors.py), then build the
    report of the study's output folder. ``command`` is the command line the HTML report records."""
    from dsc.errors import ConfigError
    from dsc.study.executors import EXECUTORS

    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}", hint=f"use one of: {', '.join(EXECUTORS)}")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, not {jobs}", hint="pass --jobs 2 to run two runs at once")
    from dsc.report.pictures import check_report_outputs
    from dsc.study import execute

    loaded = _planned(file, seeds, output, pictures, force)
    made = _folders_made(loaded)  # a report file in a folder the study will make is not refused for its folder
    check_report_outputs([p for p in loaded.pictures.paths() if p.parent not in made],
                         *(None if p is None or p.parent in made else p for p in (markdown, html)), force=True)
    result = _result(loaded)
    if dry_run:
        return result
    with _study_lock(loaded.spec.output):  # OUT.lock: one `dsc study` writes OUT/ at a time (each run has its own)
        loaded = _build(loaded, file, seeds, output, pictures, force, executor, jobs)
        result = _result(loaded)
        result.failed = [(r.path, error) for r, error in execute(loaded, keep_going=keep_going, executor=executor,
                                                                          jobs=jobs)]
        if report:
            result.report = _report(loaded, markdown, html, command)
    return result


def _folders_made(study: Study) -> set[Path]:
    """Folders that do not exist yet and the study makes: its output folder, and the folder of the data it
    builds (with their missing parents)."""
    wanted = [study.spec.output]
    if study.stages is not None and study.stages.data is not None:
        wanted.append(study.stages.data.path.parent)
    return {p for w in wanted for p in (w, *w.parents) if not p.exists()}


def _planned(file: Path, seeds: Sequence[int] | None, output: Path | None, pictures: dict[str, Any] | None,
             force: bool, built: frozenset[Path] = frozenset()) -> Study:
    """The study read, its stages and runs planned, every input that exists checked (dry runs too)."""
    from dsc.study import check_inputs, load_study, plan
    from dsc.study.stage_actions import plan_stages

    study = load_study(file, seeds=list(seeds) if seeds is not None else None, output=output, pictures=pictures)
    assert study.stages is not None
    plan_stages(study.stages, force=force, built=built)
    pending = study.stages.built_paths()
    plan(study, force=force, pending=pending)
    check_inputs(study, pending)  # every input of every run, before anything runs (dry_run too)
    return study


def _build(study: Study, file: Path, seeds: Sequence[int] | None, output: Path | None,
           pictures: dict[str, Any] | None, force: bool, executor: str, jobs: int | None) -> Study:
    """Build the study's stages: its data first (then the runs can be planned), then tokens and stores on
    ``executor``; the runs planned again on what was built."""
    from dsc.study import check_inputs, plan
    from dsc.study.run import build_stages
    from dsc.study.stage_build import build_stage

    assert study.stages is not None
    data = study.stages.data
    if data is not None and data.action != "skip":
        from dsc.console import err

        err.print(f"[bold]study[/] data: {data.name} ({data.action}: {data.reason})", highlight=False)
        build_stage(data)
        study = _planned(file, seeds, output, pictures, force, built=frozenset({data.path}))
    if not any(s.action != "skip" for s in study.stages.all()):
        return study
    build_stages(study, executor=executor, jobs=jobs)
    plan(study, force=force)
    check_inputs(study)
    return study


def _result(study: Study) -> StudyResult:
    from dsc.study import plan_rows
    from dsc.study.stage_actions import stage_rows

    assert study.stages is not None
    return StudyResult(plan_rows(study), list(study.budget_notes), study.spec.output, study.pictures.paths(),
                       stages=stage_rows(study.stages), pending_runs=study.pending_runs)


def _report(study: Study, markdown: Path | None, html: Path | None, command: str | None) -> ReportResult:
    """The report of the study's output folder; the synthetic stores assessed are those of the first seed's
    runs in the largest cell (one store per recipe, not one per cell and seed)."""
    from dsc.report import Pictures, build_report

    spec, asked = study.spec, study.pictures
    built = {s.path for s in study.stages.stores.values()} if study.stages is not None else set()
    first = [r for r in study.runs if r.seed == spec.seeds[0] and r.examples_per_class == spec.shots[-1]]
    recipes = study.sections.get("augment", {})
    stores = list(dict.fromkeys([*[p for p in [*spec.synthetic, *spec.ood] if str(p) not in recipes],
                                 *[p for r in first for p in [*r.synthetic, *r.negatives] if p in built]]))
    return build_report([spec.output], study.report_settings, data=spec.data, synthetic=stores,
                        pictures=Pictures(asked.results_figure, asked.samples, asked.confusion, asked.embedding_map,
                                          asked.embedding_run), markdown=markdown, html=html, command=command)


@contextmanager
def _study_lock(output: Path) -> Iterator[None]:
    """Hold ``<output>.lock`` while the study runs (the main process; a second writer is refused at once,
    even with --force, naming the process that holds it)."""
    from dsc import parallel
    from dsc.locks import OutputLock

    if not parallel.is_main():
        yield
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    lock = OutputLock(output).acquire()
    try:
        yield
    finally:
        lock.release()
