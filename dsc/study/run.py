"""Carry out a study's plan: train (or resume) each run, then probe each SupCon run (``dsc study``)."""

from __future__ import annotations

import logging

from dsc.errors import DscError
from dsc.study.spec import PlannedRun, Study

log = logging.getLogger("dsc.study")  # the name its messages have always had


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

    settings = study.probe_settings.model_copy(update={"seed": r.settings.seed})   # the probe follows the run's training seed
    sources = {**study.probe_sources, "seed": f"study file {study.path} (the run's seed)"}
    probe(r.path, settings, ood=study.spec.eval_ood, sources=sources, force=True)
