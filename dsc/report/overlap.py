"""Negatives that copy positives, per compared run: each run's ``--synthetic`` and ``--negatives`` stores
(from run.json ``inputs``) compared with ``dsc.store.overlap`` while the files still exist and are unchanged.

Training refuses such pairs since store schema 2; runs trained before (or by other tools) are flagged here:
a warning (terminal, JSON ``warnings``, Markdown, HTML), a table and ``report["overlap"]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsc.report.runs import Run
from dsc.report.table import Cell, Section

log = logging.getLogger(__name__)


@dataclass
class PairCheck:
    """One (positives, negatives) store pair and the runs that trained on it."""

    positives: str
    negatives: str
    runs: list[str] = field(default_factory=list)
    overlap: dict[str, Any] | None = None   # dsc.store.overlap.Overlap.record(), None when not checked
    note: str = ""                          # why it was not checked

    def record(self) -> dict[str, Any]:
        return {"positives": self.positives, "negatives": self.negatives, "runs": self.runs,
                "overlap": self.overlap, "note": self.note}


def _stores(inputs: dict[str, Any], key: str) -> list[dict[str, Any]]:
    values = inputs.get(key) if isinstance(inputs, dict) else None
    return [x for x in values or [] if isinstance(x, dict) and x.get("path")]


def _recorded(inputs: dict[str, Any], pos: str, neg: str) -> dict[str, Any] | None:
    """What training recorded for the pair (run.json ``inputs.overlap.pairs``), if anything."""
    ov = inputs.get("overlap") if isinstance(inputs, dict) else None
    pairs = ov.get("pairs") if isinstance(ov, dict) else None
    for pair in pairs if isinstance(pairs, list) else []:
        if isinstance(pair, dict) and pair.get("positives") == pos and pair.get("negatives") == neg:
            return pair
    return None


def _compare(pos: dict[str, Any], neg: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    from dsc.errors import DscError
    from dsc.store import open_store, shared_images

    missing = [r["path"] for r in (pos, neg) if not Path(r["path"]).is_file()]
    if missing:
        return None, f"{', '.join(missing)} no longer exist(s)"
    try:
        stores = [open_store(r["path"], kind="synthetic") for r in (pos, neg)]
    except DscError as exc:
        return None, f"cannot open: {exc.message}"
    try:
        for store, rec in zip(stores, (pos, neg), strict=True):
            if rec.get("fingerprint") and store.fingerprint != rec["fingerprint"]:
                return None, f"{store.path} changed since the run"
        return shared_images(*stores).record(), ""
    finally:
        for store in stores:
            store.close()


def overlap_checks(runs: list[Run]) -> list[PairCheck]:
    """Every distinct (positives, negatives) pair the runs trained on, compared once."""
    checks: dict[tuple[Any, ...], PairCheck] = {}
    for run in runs:
        inputs = run.info.get("inputs") or {}
        for neg in _stores(inputs, "negatives"):
            for pos in _stores(inputs, "synthetic"):
                key = (pos["path"], pos.get("fingerprint"), neg["path"], neg.get("fingerprint"))
                if key not in checks:
                    check = checks[key] = PairCheck(pos["path"], neg["path"])
                    check.overlap, check.note = _compare(pos, neg)
                    if check.overlap is None:
                        check.overlap = _recorded(inputs, str(pos["path"]), str(neg["path"]))
                checks[key].runs.append(run.name)
    return list(checks.values())


def overlap_warnings(checks: list[PairCheck]) -> list[str]:
    out = []
    for c in checks:
        o = c.overlap or {}
        runs = f"{len(c.runs)} run(s) ({', '.join(c.runs[:3])}{', ...' if len(c.runs) > 3 else ''})"
        if o.get("shared"):
            out.append(f"{runs} trained on negatives {c.negatives} that share {o['shared']} of {o['n_negatives']} "
                       f"images with their positives {c.positives}: the same images were positives and negatives, "
                       "so their OOD results say nothing about negatives; regenerate the OOD store and retrain")
        elif o.get("same_conditions"):
            out.append(f"{runs}: {o['same_conditions']} of {o['n_negatives']} negatives in {c.negatives} were made "
                       f"from the same source image, prompt and strength as positives in {c.positives} (only the "
                       "noise differs): they are drawn from the positives' distribution; give OOD images a strength "
                       "above every normal strength, or another --ood-strategy")
    for w in out:
        log.warning(w)
    return out


def overlap_section(checks: list[PairCheck]) -> Section | None:
    if not checks:
        return None
    s = Section("Negatives vs positives", ["negatives", "positives", "runs", "shared images", "same conditions"],
                right={2, 3, 4})
    for c in checks:
        o = c.overlap
        shared = "not checked" if o is None else f"{o['shared']} of {o['n_negatives']}"
        same = "–" if o is None else str(o["same_conditions"])
        s.rows.append([Cell(Path(c.negatives).name), Cell(Path(c.positives).name), Cell(str(len(c.runs))),
                       Cell(shared, "warn" if o is None or o["shared"] else None),
                       Cell(same, "warn" if o is not None and o["same_conditions"] else None)])
        if c.note:
            s.notes.append(f"{Path(c.negatives).name} / {Path(c.positives).name}: {c.note}")
    s.notes.append("shared: OOD images identical to a positive (same pixels, or the same source, seed, strength and "
                   "prompt); same conditions: other noise only")
    return s


def attach_overlap(report: dict[str, Any], runs: list[Run]) -> Section | None:
    """Add ``report["overlap"]`` and the warnings; return the table (None when no run had both stores)."""
    checks = overlap_checks(runs)
    report["overlap"] = [c.record() for c in checks]
    report["warnings"] += overlap_warnings(checks)
    return overlap_section(checks)
