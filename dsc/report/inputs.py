"""What a report was made from, as a table model: every store the compared runs read (path and fingerprint,
from run.json's ``inputs`` and metrics.json's ``ood_stores``), the stores a quality assessment read, and the
run directories themselves (configuration and seed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dsc.report.table import Cell, Section

#: run.json ``inputs`` keys -> what the store was to the run.
ROLES = {"data": "DATA.h5", "synthetic": "synthetic positives", "negatives": "OOD negatives"}


def _records(value: Any) -> list[dict[str, Any]]:
    """The store records of one run.json input (a record or a list of them; other entries are skipped)."""
    items = value if isinstance(value, list) else [value]
    return [v for v in items if isinstance(v, dict) and (v.get("path") or v.get("fingerprint"))]


def inputs_section(report: dict[str, Any], runs: Sequence[Any] = ()) -> Section | None:
    """One row per distinct (role, path, fingerprint): the stores behind the report and who used them."""
    config_of = {p: c["name"] for c in report.get("configurations", []) for p in c.get("runs", [])}
    found: dict[tuple[str, str, str], list[str]] = {}

    def add(role: str, rec: dict[str, Any], user: str) -> None:
        key = (role, str(rec.get("path") or "–"), str(rec.get("fingerprint") or "–"))
        users = found.setdefault(key, [])
        if user not in users:
            users.append(user)

    for run in runs:
        user = config_of.get(str(run.path), run.name)
        inputs = run.info.get("inputs") if isinstance(run.info.get("inputs"), dict) else {}
        for key, value in inputs.items():
            for rec in _records(value):
                add(ROLES.get(key, key), rec, user)
        if not _records(inputs.get("data")) and run.data_fingerprint:
            add("DATA.h5", {"path": run.data_path, "fingerprint": run.data_fingerprint}, user)
        for rec in _records((run.metrics or {}).get("ood_stores")):
            add("evaluation-only OOD", rec, user)
    quality = report.get("quality") or {}
    if quality.get("data"):
        add("DATA.h5", {"path": quality["data"], "fingerprint": quality.get("data_fingerprint")},
            "quality assessment")
    for store in quality.get("stores", []):
        add("assessed synthetic", store, "quality assessment")
    if not found:
        return None
    names = [c["name"] for c in report.get("configurations", [])]
    s = Section("Inputs", ["input", "path", "fingerprint", "used by"])
    for (role, path, fp), users in found.items():
        every = len(names) > 2 and sorted(users) == sorted(names)
        s.rows.append([Cell(role), Cell(path), Cell(fp, "dim"),
                       Cell(f"all {len(names)} configurations" if every else ", ".join(users))])
    s.notes.append("Fingerprints as recorded by the runs (run.json inputs) and by the quality assessment; "
                   "a store changed since then has another fingerprint.")
    return s


def runs_section(report: dict[str, Any], runs: Sequence[Any] = ()) -> Section | None:
    """One row per run directory: its configuration and seed (incomplete runs: the reason)."""
    if not runs:
        return None
    config_of = {p: c["name"] for c in report.get("configurations", []) for p in c.get("runs", [])}
    reason = {r["path"]: r["reason"] for r in report.get("incomplete", [])}
    s = Section("Runs", ["run directory", "configuration", "seed"], right={2})
    for run in runs:
        path = str(run.path)
        what = Cell(config_of[path]) if path in config_of else Cell(reason.get(path, "not compared"), "warn")
        s.rows.append([Cell(path), what, Cell("–" if run.seed is None else str(run.seed))])
    return s
