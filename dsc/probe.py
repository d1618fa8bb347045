"""`dsc probe RUN/`: the job around the probe stage of a `dsc pretrain` run.

This module is the job shell: it refuses runs that are not (finished) pretrain runs and runs the stage as a
``dsc.jobs.Job`` (RUN/probe.lock, the multi-process session, RUN/probe.partial/ renamed to RUN/probe/ with
classifier.safetensors, metrics.jsonl and metrics.json when complete, so a failed --force keeps the old results).
The stage itself (features cached in RUN/embeddings.h5, the linear head selected on val, the evaluation
suite) is dsc/evaluate/probe.py, the embedding cache dsc/evaluate/embeddings.py. It stays out of dsc/cli/
because `dsc study`, the benchmarks and Python callers run probes without the command line.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsc.errors import InputError
from dsc.evaluate.embeddings import EMBEDDINGS
from dsc.evaluate.probe import probe_metrics, run_probe_stage, save_head
from dsc.jobs import Job
from dsc.outputs import atomic_write_json, atomic_write_text, check_output
from dsc.provenance import Timings
from dsc.report.runs import TrainingProgress, training_progress
from dsc.settings import ProbeSettings

log = logging.getLogger(__name__)

PROBE_DIR = "probe"


@dataclass
class ProbeResult:
    """What `dsc probe` produced."""

    metrics: dict[str, Any]
    metrics_path: Path
    embeddings_path: Path
    embeddings_reused: bool
    history: list[dict[str, Any]] = field(default_factory=list)


def probe(run_dir: Path | str, settings: ProbeSettings | None = None, *, ood: Sequence[Path | str] = (),
          sources: dict[str, str] | None = None, force: bool = False,
          recompute_features: bool = False, allow_incomplete: bool = False) -> ProbeResult:
    """Run `dsc probe` on a pretrain run directory; writes RUN/embeddings.h5 and RUN/probe/metrics.json.

    ``force`` overwrites earlier probe results; cached features are still reused when they match the
    checkpoint, DATA.h5, image size and device type. ``recompute_features`` rebuilds them regardless.
    A run whose training did not finish (run.json status other than "complete") is refused unless
    ``allow_incomplete``; the metrics record the training's state either way (``training``).
    Under ``accelerate launch``/``torchrun`` the embedding pass is sharded over the processes (batches by
    rank, gathered); the main process writes embeddings.h5, trains the probe and evaluates, and every
    process returns its result.
    """
    from dsc import parallel

    # RUN/probe.lock: one probe of a run at a time; RUN/probe.partial/ renamed to RUN/probe/ when complete
    with Job("probe", Path(run_dir) / PROBE_DIR, force=force, resumable=False) as job:
        result = None
        with parallel.together("probing"):
            result = _probe(run_dir, job, settings, ood=ood, sources=sources,
                            recompute_features=recompute_features, allow_incomplete=allow_incomplete)
        job.commit()  # every process: the commit waits for all of them (inside "probing" only main reached it)
        if result is None:  # another process's share of the embedding pass is done; the main one wrote the rest
            path = Path(run_dir) / PROBE_DIR / "metrics.json"
            metrics = json.loads(path.read_text())
            result = ProbeResult(metrics, path, Path(run_dir) / EMBEDDINGS, metrics["embeddings"]["reused"], [])
        return result


def _probe(run_dir: Path | str, job: Job, settings: ProbeSettings | None, *, ood: Sequence[Path | str],
           sources: dict[str, str] | None, recompute_features: bool,
           allow_incomplete: bool = False) -> ProbeResult | None:
    from dsc import parallel
    from dsc.train.run_dir import read_run_info

    settings = settings or ProbeSettings()
    run_dir = Path(run_dir)
    timings = Timings()
    t_start = time.perf_counter()
    run_info = read_run_info(run_dir)
    progress = _check_run(run_dir, run_info, settings, allow_incomplete)
    out_dir = run_dir / PROBE_DIR
    metrics_path = out_dir / "metrics.json"
    if parallel.is_main():  # (the main process holds RUN/probe.lock; the others write nothing there)
        check_output(metrics_path if out_dir.is_dir() else out_dir, force=job.force)
    job.begin(marker="metrics.json")
    fit = run_probe_stage(run_dir, run_info, settings, ood=[Path(p) for p in ood],
                          recompute_features=recompute_features, timings=timings)
    if fit is None:
        return None
    work = job.work
    save_head(work / "classifier.safetensors", fit.head)
    atomic_write_text(work / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in fit.history))
    timings["total"] = round(time.perf_counter() - t_start, 4)
    metrics = probe_metrics(fit, run_dir, run_info, settings, timings=timings, training=progress.as_dict(),
                            sources=sources or {})
    atomic_write_json(work / "metrics.json", metrics)
    return ProbeResult(metrics, metrics_path, run_dir / EMBEDDINGS, fit.embeddings["reused"], fit.history)


def _check_run(run_dir: Path, run_info: dict[str, Any], settings: ProbeSettings,
               allow_incomplete: bool) -> TrainingProgress:
    """Refuse a run that is not a pretrain run, or whose training did not finish (unless allowed)."""
    if run_info.get("command_name") not in (None, "pretrain"):
        raise InputError(f"{run_dir} is a {run_info.get('command_name')!r} run; `dsc probe` needs a pretrain run",
                         hint="baseline runs are evaluated by `dsc baseline` itself (RUN/metrics.json)")
    progress = training_progress(run_dir, run_info, "pretrain")
    if not progress.finished:
        if not allow_incomplete:
            raise InputError(f"{run_dir}: training {progress.reason()}",
                             hint="or pass --allow-incomplete to probe its checkpoint anyway; `dsc report` then "
                                  "marks the run as incomplete")
        log.warning("%s: training %s; probing its %r checkpoint anyway (--allow-incomplete)", run_dir,
                    progress.describe(), settings.checkpoint)
    return progress
