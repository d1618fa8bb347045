"""What each planned run does (run, resume, probe only, or skip), from what its folder already holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dsc.errors import MismatchError
from dsc.study.budget import budget_text
from dsc.study.spec import PlannedRun, Study


def plan(study: Study, *, force: bool = False, pending: set[Path] | frozenset[Path] = frozenset()) -> Study:
    """Decide per run: run, resume, probe only, or skip (complete with the same settings). ``pending``: stores
    the study has yet to build (their fingerprints are compared when the plan is made again after)."""
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
        stale = _changed_inputs(info.get("inputs") or {}, r, fingerprints, pending)
        if stale:
            raise MismatchError(f"{r.path} was made from other inputs ({'; '.join(stale)})",
                                hint="pass --force to redo the study's runs on the current stores, or choose "
                                "another output")
        status = info.get("status")
        if status == "complete":
            reprobe = _changed_probe(study, r, fingerprints, pending) if existing.complete and r.method == "supcon" \
                else []
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


def _changed_probe(study: Study, r: PlannedRun, cache: dict[Path, str],
                   pending: set[Path] | frozenset[Path] = frozenset()) -> list[str]:
    """How the study's probe of ``r`` differs from the recorded one (settings, evaluation-only OOD stores).

    A probe without recorded settings (hand-made or older) counts as unchanged.
    """
    from dsc.train.run_dir import settings_diff

    metrics = json.loads((r.path / "probe" / "metrics.json").read_text())  # load_run has read it already
    prov = metrics.get("provenance") if isinstance(metrics, dict) else None
    recorded = prov.get("settings") if isinstance(prov, dict) else None
    if not isinstance(recorded, dict):
        return []
    wanted = study.probe_settings.model_copy(update={"seed": r.settings.seed}).model_dump(mode="json")
    changes = [c for c in settings_diff(recorded, wanted) if c.split(":", 1)[0] not in PROBE_RESULT_FREE]
    ood = (prov.get("inputs") or {}).get("ood")
    if any(p in pending for p in study.spec.eval_ood):
        changes.append("its evaluation OOD store is to be built (compared once built)")
    elif isinstance(ood, list):
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


def _changed_inputs(recorded: dict[str, Any], r: PlannedRun, cache: dict[Path, str],
                    pending: set[Path] | frozenset[Path] = frozenset()) -> list[str]:
    """Inputs whose fingerprint differs from what the existing run recorded (data, synthetic, negatives)."""
    def fp(path: Path) -> str:
        return _fingerprint(path, cache)

    out = []
    data = recorded.get("data")
    if isinstance(data, dict) and data.get("fingerprint") and data["fingerprint"] != fp(r.data):
        out.append(f"data: {data['fingerprint']} -> {fp(r.data)}")
    for key, paths in (("synthetic", r.synthetic), ("negatives", r.negatives)):
        if any(p in pending for p in paths):
            continue
        old = sorted(x.get("fingerprint", "") for x in recorded.get(key) or [] if isinstance(x, dict))
        new = sorted(fp(p) for p in paths)
        if key in recorded and old != new:
            out.append(f"{key}: {', '.join(old) or 'none'} -> {', '.join(new) or 'none'}")
    return out


def plan_rows(study: Study) -> list[dict[str, Any]]:
    """The plan as JSON-able rows (for --dry-run)."""
    return [{"run": str(r.path), "method": r.method, "variant": r.variant, "seed": r.seed,
             "examples_per_class": r.examples_per_class, "action": r.action,
             "reason": r.reason, "synthetic": [str(p) for p in r.synthetic],
             "negatives": [str(p) for p in r.negatives], "budget": budget_text(r.settings)} for r in study.runs]
