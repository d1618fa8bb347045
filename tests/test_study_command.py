"""``dsc study`` and ``dsc.study()`` are one library call (``dsc.study.run_study``): same plan, same checks,
same failures reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dsc
import dsc.study
from dsc.testing import report_stores


def _study_file(tmp_path: Path) -> Path:
    data, _ = report_stores(tmp_path)
    study = tmp_path / "study.toml"
    study.write_text(f'[study]\ndata = "{data}"\nvariants = ["none"]\nseeds = [0]\noutput = "{tmp_path / "out"}"\n'
                     '\n[train]\nbackbone = "timm:test_resnet"\nimage_size = 32\nepochs = 1\n')
    return study


@pytest.fixture
def failing_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The runs themselves (tested in test_study) replaced by: every planned run fails with ``boom``."""
    calls: list[str] = []

    def execute(spec, keep_going, **where):
        calls.append("execute")
        return [(r, "boom") for r in spec.runs if r.action != "skip"]

    monkeypatch.setattr(dsc.study, "execute", execute)
    return calls


def test_cli_and_api_report_the_same_failures(run_dsc, tmp_path, failing_runs):
    study = _study_file(tmp_path)
    out = tmp_path / "out"
    runs = [str(out / "ce-none-s0"), str(out / "supcon-none-s0")]

    result = dsc.study(study, keep_going=True, report=False)
    assert [(str(p), e) for p, e in result.failed] == [(r, "boom") for r in runs]
    assert [row["run"] for row in result.plan] == runs and result.output == out and result.report is None

    res = run_dsc("study", study, "--keep-going", "--no-report")
    assert res.code == 0 and res.out.strip() == "", res  # no "finished" line when runs failed
    assert failing_runs == ["execute", "execute"]


def test_cli_dry_run_json_is_the_api_plan(run_dsc, tmp_path, failing_runs):
    study = _study_file(tmp_path)
    res = run_dsc("study", study, "--dry-run", "--json")
    assert res.code == 0, res
    result = dsc.study(study, dry_run=True)
    assert json.loads(res.out) == {"stages": result.stages, "runs": result.plan, "budget": result.budget,
                                   "pending_runs": result.pending_runs}
    assert failing_runs == []  # a dry run runs nothing


def test_both_check_the_report_outputs_before_running(run_dsc, tmp_path, failing_runs):
    study = _study_file(tmp_path)
    bad = tmp_path / "results.gif"
    res = run_dsc("study", study, "--results-figure", bad)
    assert res.code != 0 and "results.gif" in res.err, res
    with pytest.raises(dsc.DscError, match="results.gif"):
        dsc.study(study, results_figure=bad)
    assert failing_runs == []
