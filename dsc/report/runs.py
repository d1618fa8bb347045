"""Finding and loading run directories (docs/run-format.md): complete ones carry final metrics,
everything else is listed as incomplete with the reason, never a crash.

A run whose *training* did not finish (interrupted, killed, failed) is described by ``training_progress``
("interrupted at epoch 3 of 30: resume with `dsc pretrain ... --resume`"); one that has metrics anyway
(probed with ``--allow-incomplete``) keeps them but carries ``Run.training_problem``, which the report marks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from dsc.errors import InputError

log = logging.getLogger(__name__)

METRICS_SCHEMA = "dsc-metrics/1"
#: Files whose presence marks a directory as a run directory.
RUN_MARKERS = ("run.json", "metrics.json", "metrics.jsonl", "probe", "checkpoints")
#: run.json statuses of a training that finished (None: written by a tool that records no status).
FINISHED = (None, "complete")


@dataclass(frozen=True)
class TrainingProgress:
    """How far a run's training got: run.json's status, epochs done (last checkpoint) and epochs asked."""

    status: str | None
    epochs_done: int | None
    epochs: int | None
    command: str            # "pretrain" or "baseline"
    resume_command: str     # how to continue it
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "epochs_done": self.epochs_done, "epochs": self.epochs}

    @property
    def where(self) -> str:
        """"epoch 3 of 30" (or what is known of it)."""
        done = "?" if self.epochs_done is None else str(self.epochs_done)
        return f"epoch {done}" + (f" of {self.epochs}" if self.epochs is not None else "")

    def describe(self) -> str:
        """"interrupted at epoch 3 of 30" and the like (empty for a finished run)."""
        if self.finished:
            return ""
        if self.status == "interrupted":
            return f"interrupted at {self.where}"
        if self.status == "running":
            return f"not finished at {self.where} (run.json still says running: killed, or still training)"
        if self.status == "failed":
            return f"failed at {self.where}" + (f" ({self.error})" if self.error else "")
        return f"status {self.status!r} at {self.where}"

    def reason(self) -> str:
        """The line `dsc report` and `dsc probe` give: what happened and how to resume."""
        if self.status == "failed":
            return (f"{self.describe()}: fix the cause, then resume with `{self.resume_command}` "
                    "(or start over with --force)")
        return f"{self.describe()}: resume with `{self.resume_command}`"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _resume_command(path: Path, info: dict[str, Any], command: str) -> str:
    """The recorded command line with --resume (and without --force), else a generic one."""
    recorded = str(info.get("command") or "").split()
    if len(recorded) >= 2 and recorded[0] == "dsc" and recorded[1] in ("pretrain", "baseline", "study"):
        words = [w for w in recorded if w != "--force"]
        if recorded[1] != "study" and "--resume" not in words:
            words.append("--resume")
        return " ".join(words)
    return f"dsc {command} ... --output {path} --resume"


def training_progress(path: Path | str, info: dict[str, Any], command: str | None = None) -> TrainingProgress:
    """Read how far a run's training got from run.json (``info``), checkpoints/last.json and metrics.jsonl.

    Epochs done is the last checkpoint's epoch (where ``--resume`` continues), else run.json's
    ``epochs_done``, else the last epoch in metrics.jsonl; epochs asked is the run's ``epochs`` setting.
    """
    path = Path(path)
    command = command or str(info.get("command_name") or "pretrain")
    done = None
    last, _ = _read_json(path / "checkpoints" / "last.json")
    if last is not None:
        done = _int(last.get("epoch"))
    if done is None:
        done = _int(info.get("epochs_done"))
    if done is None:  # dsc writes metrics.jsonl and the checkpoint after each epoch: none yet means 0
        epochs = [_int(r.get("epoch")) for r in _jsonl(path / "metrics.jsonl")]
        done = max((e for e in epochs if e is not None), default=0)
    settings = info.get("settings") if isinstance(info.get("settings"), dict) else {}
    section = next((settings[k] for k in (command, "train") if isinstance(settings.get(k), dict)), settings)
    status = info.get("status")
    return TrainingProgress(status if isinstance(status, str) or status is None else str(status), done,
                            _int(section.get("epochs")), command, _resume_command(path, info, command),
                            str(info["error"]) if info.get("error") else None)


@dataclass
class Run:
    """One run directory and what could be read from it."""

    path: Path
    info: dict[str, Any] = field(default_factory=dict)       # run.json (may be empty)
    metrics: dict[str, Any] | None = None                    # final metrics (None: incomplete)
    problem: str | None = None                               # why the run is incomplete

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def complete(self) -> bool:
        return self.metrics is not None

    @cached_property
    def progress(self) -> TrainingProgress:
        return training_progress(self.path, self.info, self.kind)

    @property
    def training_problem(self) -> str | None:
        """Why a run that has metrics must not be read as a finished training, else None.

        The probe records the training's state when it ran (``metrics["training"]``); run.json's status
        covers metrics written by other tools and runs restarted after their probe.
        """
        if self.metrics is None:
            return None
        recorded = self.metrics.get("training")
        if isinstance(recorded, dict) and recorded.get("status") not in FINISHED:
            p = TrainingProgress(str(recorded.get("status")), _int(recorded.get("epochs_done")),
                                 _int(recorded.get("epochs")), self.kind, "")
            since = (f"; the training has finished since: re-probe with `dsc probe {self.path} --force`"
                     if self.progress.finished else "")
            return f"probed after its training was {p.describe()}{since}"
        progress = self.progress
        if not progress.finished:
            return f"training {progress.describe()}; its metrics are of an unfinished model"
        return None

    @property
    def kind(self) -> str:
        """"pretrain" or "baseline" (from run.json's command, else from the metrics method)."""
        name = self.info.get("command_name")
        if name in ("pretrain", "baseline"):
            return name
        cmd = str(self.info.get("command", "")).split()
        for word in cmd:
            if word in ("pretrain", "baseline"):
                return word
        kind = self.info.get("kind")
        if kind in ("pretrain", "baseline"):
            return kind
        if self.metrics and self.metrics.get("method") == "ce":
            return "baseline"
        if (self.path / "probe").exists() or self.metrics:
            return "pretrain"
        return "baseline" if (self.path / "metrics.json").exists() else "pretrain"

    @property
    def seed(self) -> int | None:
        for source in (self.metrics or {}, self.info):
            if isinstance(source.get("seed"), int):
                return source["seed"]
        settings = self.settings
        return settings.get("seed") if isinstance(settings.get("seed"), int) else None

    @property
    def settings(self) -> dict[str, Any]:
        """The training section of the run's resolved settings (flat), when run.json has it."""
        s = self.info.get("settings")
        if not isinstance(s, dict):
            return {}
        for key in (self.kind, "train"):
            if isinstance(s.get(key), dict):
                return s[key]
        return s

    @property
    def data_fingerprint(self) -> str | None:
        data = (self.metrics or {}).get("data") or {}
        if data.get("fingerprint"):
            return str(data["fingerprint"])
        inputs = self.info.get("inputs") or {}
        d = inputs.get("data") if isinstance(inputs, dict) else None
        if isinstance(d, dict) and d.get("fingerprint"):
            return str(d["fingerprint"])
        return None

    @property
    def data_path(self) -> str | None:
        data = (self.metrics or {}).get("data") or {}
        inputs = self.info.get("inputs") or {}
        d = inputs.get("data") if isinstance(inputs, dict) else None
        return data.get("path") or (d.get("path") if isinstance(d, dict) else None)

    @cached_property
    def history(self) -> list[dict[str, Any]]:
        """metrics.jsonl rows (bad lines are skipped with a warning)."""
        path = self.path / "metrics.jsonl"
        return _jsonl(path, warn=True) if path.is_file() else []

    def timings(self) -> dict[str, float]:
        """Seconds per stage: the metrics' timings, completed with run.json's."""
        out: dict[str, float] = {}
        for source in (self.info.get("timings"), (self.metrics or {}).get("timings")):
            if isinstance(source, dict):
                out.update({k: float(v) for k, v in source.items() if isinstance(v, (int, float))})
        return out


def _jsonl(path: Path, warn: bool = False) -> list[dict[str, Any]]:
    """The JSON objects of a .jsonl file (bad lines skipped, with a warning when ``warn``)."""
    rows: list[dict[str, Any]] = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return rows
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if warn:
                log.warning("%s line %d is not JSON; skipped", path, i)
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        return None, f"no {path.name}"
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"{path.name} is not valid JSON ({exc})"
    if not isinstance(obj, dict):
        return None, f"{path.name} is not a JSON object"
    return obj, None


def load_run(path: Path) -> Run:
    """Read run.json and the final metrics of one run directory (never raises for bad content)."""
    path = Path(path)
    run = Run(path)
    info, problem = _read_json(path / "run.json")
    run.info = info or {}
    if problem and (path / "run.json").exists():
        run.problem = problem
        return run
    probe = path / "probe" / "metrics.json"
    baseline = path / "metrics.json"
    candidates = [probe, baseline] if run.kind == "pretrain" else [baseline, probe]
    found = next((c for c in candidates if c.exists()), None)
    status = run.info.get("status")
    if found is None:
        if status not in FINISHED:
            run.problem = training_progress(path, run.info, run.kind).reason()
        elif run.kind == "pretrain":
            run.problem = "no probe/metrics.json (run `dsc probe` on it)" if status == "complete" or (
                path / "checkpoints").exists() else "no metrics (not finished)"
        else:
            run.problem = "no metrics.json (not finished)"
        return run
    metrics, problem = _read_json(found)
    if metrics is None:
        run.problem = problem
        return run
    schema = metrics.get("schema", METRICS_SCHEMA)
    if schema != METRICS_SCHEMA:
        run.problem = f"{found.name} has unknown schema {schema!r} (expected {METRICS_SCHEMA})"
        return run
    if not isinstance(metrics.get("test"), dict) or "top1" not in metrics["test"]:
        run.problem = f"{found.relative_to(path)} has no test.top1"
        return run
    run.metrics = metrics
    return run


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in RUN_MARKERS)


def discover(paths: list[Path], depth: int = 2) -> list[Run]:
    """Runs given directly or found up to ``depth`` levels below the given directories.

    Raises InputError for a missing path or when no run is found at all.
    """
    found: dict[Path, Run] = {}
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise InputError(f"{p} does not exist", hint="give run directories or folders that contain them")
        if not p.is_dir():
            raise InputError(f"{p} is not a directory", hint="give run directories (made by `dsc pretrain` "
                             "or `dsc baseline`) or folders that contain them")
        if is_run_dir(p):
            found.setdefault(p.resolve(), load_run(p))
            continue
        level = [p]
        for _ in range(depth):
            children = sorted(c for d in level for c in d.iterdir() if c.is_dir() and not c.name.startswith("."))
            runs = [c for c in children if is_run_dir(c)]
            for c in runs:
                found.setdefault(c.resolve(), load_run(c))
            level = [c for c in children if c not in runs]
    if not found:
        given = ", ".join(str(p) for p in paths) or "(nothing)"
        raise InputError(f"no run directories found in {given}",
                         hint="a run directory holds run.json and metrics.json or probe/metrics.json; "
                         "make one with `dsc baseline` or `dsc pretrain` + `dsc probe`")
    return list(found.values())
