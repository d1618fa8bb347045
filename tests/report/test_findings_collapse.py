"""A Findings comparison whose runs collapsed (SupCon projections at one point) says so, so an answer about
an encoder that did not learn is not read as evidence about the synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import write_run


def _collapse(run: Path) -> None:
    """Rewrite metrics.jsonl as `dsc pretrain` writes it for a run whose projections ended at one point."""
    rows = [{"epoch": e, "loss": 4.14, "val_knn_top1": 0.3, "proj_cos": c} for e, c in enumerate((0.4, 0.97))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_findings_name_the_collapsed_runs_of_a_comparison(run_dsc, tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        write_run(root, f"sc-none-s{seed}", method="supcon+probe", seed=seed, top1=0.5)
        run = write_run(root, f"sc-normal-s{seed}", method="supcon+probe", seed=seed, top1=0.45, label="normal")
        if seed == 0:
            _collapse(run)
    res = run_dsc("report", root, "--json")
    assert res.code == 0, res
    report = json.loads(res.out)
    answer = next(r["answer"] for r in report["findings"] if "synthetic positives help" in r["question"])
    assert "collapsed: 1 of 2 runs of supcon+probe/normal" in answer and "encoder did not learn" in answer
    assert any("collapsed runs" in w and "1 of 2 of supcon+probe/normal" in w for w in report["warnings"])


def test_findings_without_collapse_say_nothing_of_it(run_dsc, tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):
        write_run(root, f"sc-none-s{seed}", method="supcon+probe", seed=seed, top1=0.5)
        write_run(root, f"sc-normal-s{seed}", method="supcon+probe", seed=seed, top1=0.45, label="normal")
    report = json.loads(run_dsc("report", root, "--json").out)
    assert not any("collapsed" in r["answer"] for r in report["findings"])
    assert not any("collapsed" in w for w in report.get("warnings", []))
