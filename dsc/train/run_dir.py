"""The run directory (docs/run-format.md): ``run.json``, ``metrics.jsonl`` and ``checkpoints/``.

``run.json`` is rewritten atomically whenever the status changes; ``metrics.jsonl`` gets one line per
epoch. On resume, lines of epochs after the resumed checkpoint are dropped so the file stays consistent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dsc.errors import InputError, MismatchError
from dsc.outputs import atomic_write_json, atomic_write_text
from dsc.provenance import json_hash, now, provenance

RUN_SCHEMA = "dsc-run/1"

def read_run_info(run_dir: Path | str) -> dict[str, Any]:
    """The content of ``RUN/run.json``."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise InputError(f"{run_dir} is not a dsc run directory (no run.json)",
                         hint="pass the --output folder of `dsc pretrain` or `dsc baseline`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON ({exc})", hint="the run directory is damaged") from None


#: Settings added after runs were first recorded, with the value older runs behaved as: left out of the
#: comparison at that value, so a run made before them keeps its hash and can be resumed or reused.
ADDED_LATER: dict[str, Any] = {"examples_per_class": None, "few_shot_seed": None, "protocol": "fine-tune",
                               "arm": None, "mix_label": "dominant", "mix_threshold": 0.7}


def _results(settings: dict[str, Any]) -> dict[str, Any]:
    """Recorded training settings without the results-neutral ones (``TrainSettings.resume_free``)."""
    from dsc.settings import TrainSettings

    return {k: v for k, v in settings.items() if k not in TrainSettings.resume_free
            and not (k in ADDED_LATER and v == ADDED_LATER[k])}


def settings_hash(settings: dict[str, Any]) -> str:
    """Hash of the settings that determine results (the ``resume_free`` ones excluded)."""
    return json_hash(_results(settings))


def settings_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences ``key: old -> new`` of the settings that determine results."""
    from dsc.jobs import differences

    return differences(_results(old), _results(new))


class RunDir:
    """A run directory being written by one training command."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def metrics_jsonl(self) -> Path:
        return self.path / "metrics.jsonl"

    def check_resume(self, command: str, settings: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        """Refuse to resume a run made with other settings or inputs (dsc/jobs.py's one rule); list the
        differences."""
        from dsc.jobs import Record, check_resume, fingerprints

        info = read_run_info(self.path)
        if info.get("command_name") != command:
            raise MismatchError(f"{self.path} is a {info.get('command_name')!r} run, not {command!r}",
                                hint="resume it with the command that made it, or pass --force")
        check_resume(self.path, Record(_results(info.get("settings", {})), fingerprints(info.get("inputs", {}))),
                     Record(_results(settings), fingerprints(inputs)))
        return info

    def start(self, command: str, settings: dict[str, Any], sources: dict[str, str], inputs: dict[str, Any],
              backbone: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write a fresh ``run.json`` with status "running"."""
        info = {"schema": RUN_SCHEMA, "command_name": command, **provenance(settings),
                "sources": sources, "settings_hash": settings_hash(settings), "seed": settings.get("seed"),
                "inputs": inputs, "backbone": backbone, "status": "running", "finished": None,
                "timings": {}, **(extra or {})}
        atomic_write_json(self.run_json, info)
        return info

    def update(self, **fields: Any) -> dict[str, Any]:
        """Merge fields into ``run.json``."""
        info = read_run_info(self.path)
        info.update(fields)
        atomic_write_json(self.run_json, info)
        return info

    def finish(self, status: str, timings: dict[str, float] | None = None, **fields: Any) -> dict[str, Any]:
        return self.update(status=status, finished=now(), timings=timings or {}, **fields)

    # ----------------------------------------------------------------------------------- metrics
    def append_metrics(self, row: dict[str, Any]) -> None:
        with self.metrics_jsonl.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_jsonl.is_file():
            return []
        return [json.loads(line) for line in self.metrics_jsonl.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, last_epoch: int) -> None:
        """Keep only epochs <= ``last_epoch`` (after resuming from that epoch's checkpoint)."""
        rows = [r for r in self.read_metrics() if r.get("epoch", 0) <= last_epoch]
        atomic_write_text(self.metrics_jsonl, "".join(json.dumps(r) + "\n" for r in rows))
