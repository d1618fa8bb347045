"""dsc.report.build_report: the one report builder of `dsc report` and `dsc study`."""

from __future__ import annotations

import pytest

from dsc.errors import InputError
from dsc.report import Pictures, build_report, make_report
from dsc.settings import ReportSettings
from dsc.testing import report_stores

from .demo_like import demo_like_study


def test_runs_exports_and_figures_are_written_and_listed(tmp_path):
    root = demo_like_study(tmp_path / "runs")
    settings = ReportSettings(curves=False)
    md, html, fig = tmp_path / "r.md", tmp_path / "r.html", tmp_path / "results.png"
    result = build_report([root], settings, pictures=Pictures(results=fig), markdown=md, html=html,
                          command="dsc report runs")
    assert result.written == [fig, md, html] and all(p.is_file() for p in result.written)
    assert result.report["written"] == [str(fig), str(md), str(html)]
    assert [f["kind"] for f in result.report["figures"]] == ["results"]
    assert "Results per configuration" in html.read_text()          # the HTML titles its figure
    plain = make_report([root], settings)                            # the same comparison as make_report's
    assert [s.title for s in result.sections] == [s.title for s in plain.sections]
    assert result.report["configurations"] == plain.report["configurations"]


def test_quality_only_report_without_runs(tmp_path):
    data, aug = report_stores(tmp_path)
    result = build_report([], ReportSettings(), data=data, synthetic=[aug], quality=True)
    assert result.runs == [] and result.groups == [] and result.written == []
    assert result.report["schema"] == "dsc-report/1" and result.report["quality"]["stores"][0]["n"] == 30
    assert any(s.title.startswith("Synthetic-data quality") for s in result.sections)
    assert "findings" in result.report and "written" not in result.report
    unassessed = build_report([], ReportSettings(), data=data, synthetic=[aug], quality=False)
    assert "quality" not in unassessed.report and unassessed.sections == []


def test_quality_needs_the_real_images(tmp_path):
    _, aug = report_stores(tmp_path)
    with pytest.raises(InputError, match="DATA.h5"):
        build_report([], ReportSettings(), synthetic=[aug], quality=True)
