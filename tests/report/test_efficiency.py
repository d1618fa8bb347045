"""A few-shot sweep in the report: each cell compared with its own baseline, arms paired within a cell, the
choice on validation made within one cell, budgets compared within a cell, and the data-efficiency table,
JSON and figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsc.report import Pictures, build_report
from dsc.settings import ReportSettings

from .conftest import write_run

#: top-1 per (arm, examples per class): more images help, and normal synthetic data helps by 5 points.
TOP1 = {("none", 1): 0.40, ("none", 2): 0.50, ("none", 4): 0.60,
        ("normal", 1): 0.45, ("normal", 2): 0.55, ("normal", 4): 0.65}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for (arm, k), top1 in TOP1.items():
        for seed in (0, 1):
            # as a study with vary = ["train"] plans them: seed 1 pins the draw to seed 0's, seed 0 need not
            pinned = {"few_shot_seed": 0} if seed else {}
            run = write_run(root, f"ce-{arm}-k{k}-s{seed}", method="ce", seed=seed, label=arm,
                            top1=top1 + 0.01 * seed, settings={"examples_per_class": k, **pinned})
            if (arm, k) == ("normal", 1):   # the best validation top-1 of all: in the smallest cell
                metrics = json.loads((run / "metrics.json").read_text())
                metrics["val"]["top1"] = 0.99
                (run / "metrics.json").write_text(json.dumps(metrics))
            info = json.loads((run / "run.json").read_text())
            info.update(optimizer_steps=10 * k, images_seen=80 * k)   # the budget grows with the cell
            (run / "run.json").write_text(json.dumps(info))
    return root


def _report(sweep: Path, **kw):
    return build_report([sweep], ReportSettings(**kw))


def test_each_cell_is_compared_with_its_own_baseline(sweep: Path) -> None:
    result = _report(sweep)
    report = result.report
    configs = {c["name"]: c for c in report["configurations"]}
    assert set(configs) == {f"ce/{arm}/k{k}" for arm, k in TOP1}   # the seeds of a cell group together
    assert all(c["n"] == 2 for c in configs.values())
    assert report["baseline"] == "ce/none/k4"   # the default baseline: the largest cell's
    for k in (1, 2, 4):
        normal = configs[f"ce/normal/k{k}"]
        assert normal["reference"] == f"ce/none/k{k}"
        assert normal["deltas"]["top1"]["delta"] == pytest.approx(0.05)   # not 0.45 - 0.60 across cells
    for arm in report["arm_comparisons"]:
        assert arm["treated"].rsplit("/", 1)[1] == arm["reference"].rsplit("/", 1)[1]   # within one cell
    assert report["selection"]["name"] == "ce/normal/k4"   # not k1's, whose val is highest: more data is no choice
    assert not [w for w in report["warnings"] if "optimizer steps" in w]   # budgets differ only across cells


def test_the_data_efficiency_table_and_json(sweep: Path) -> None:
    result = _report(sweep)
    data = result.report["data_efficiency"]
    assert data["cells"] == [1, 2, 4] and data["baseline"] == "ce/none"
    rows = {r["configuration"]: r for r in data["rows"]}
    assert set(rows) == {"ce/none", "ce/normal"}
    cell = rows["ce/normal"]["values"]["2"]
    assert cell["mean"] == pytest.approx(0.555) and cell["n"] == 2 and cell["low"] < 0.555 < cell["high"]
    section = next(s for s in result.sections if s.title.startswith("Data efficiency"))
    assert section.columns == ["configuration", "1", "2", "4"]
    assert [r[0].text for r in section.rows] == ["ce/none (baseline)", "ce/normal"]
    assert section.rows[1][2].text.startswith("55.5 [") and "exploratory" in section.notes[0]


def test_no_sweep_no_table(tmp_path: Path) -> None:
    for seed in (0, 1):
        write_run(tmp_path / "runs", f"ce-none-s{seed}", seed=seed)
    result = _report(tmp_path / "runs")
    assert "data_efficiency" not in result.report
    assert not any(s.title.startswith("Data efficiency") for s in result.sections)
    assert result.report["configurations"][0]["name"] == "ce/none"


def test_the_results_figure_of_a_sweep_is_the_data_efficiency_figure(sweep: Path, tmp_path: Path) -> None:
    from dsc.report.figures.results import results_figure

    result = _report(sweep)
    fig = results_figure(result.report)
    ax = fig.axes[0]
    lines = {ln.get_gid(): ln for ln in ax.get_lines() if ln.get_gid()}
    assert set(lines) == {"line:ce/none", "line:ce/normal"}
    assert list(lines["line:ce/normal"].get_xdata()) == [1, 2, 4]
    assert [round(y, 1) for y in lines["line:ce/normal"].get_ydata()] == [45.5, 55.5, 65.5]
    assert lines["line:ce/none"].get_linestyle() == "--"   # the baseline's arm
    assert ax.get_xscale() == "log"
    out = build_report([sweep], ReportSettings(), pictures=Pictures(results=tmp_path / "eff.png"))
    assert (tmp_path / "eff.png").stat().st_size > 1000 and out.written
