"""The training-curves table names collapsed SupCon runs."""

from __future__ import annotations

from types import SimpleNamespace

from dsc.report.curves import curves_section, run_curves


def _run(name: str, cos: list[float]) -> SimpleNamespace:
    rows = [{"epoch": i + 1, "loss": 4.8, "val_knn_top1": 0.2, "proj_cos": c, "loss_collapsed": 4.8}
            for i, c in enumerate(cos)]
    return SimpleNamespace(name=name, history=rows, progress=SimpleNamespace(finished=True), training_problem=None)


def test_a_run_whose_projections_ended_at_one_point_is_marked_collapsed():
    collapsed, fine = _run("collapsed", [0.5, 0.97]), _run("fine", [0.97, 0.6])
    assert run_curves(collapsed)["collapsed"] and not run_curves(fine)["collapsed"]
    section = curves_section([collapsed, fine])
    cells = {row[0].text: row[2] for row in section.rows}
    assert cells["collapsed"].text.endswith("collapsed") and cells["collapsed"].style == "bad"
    assert "collapsed" not in cells["fine"].text
    assert any("one point" in note for note in section.notes)


def test_runs_without_collapse_figures_are_not_marked():
    run = SimpleNamespace(name="old", history=[{"epoch": 1, "loss": 1.0, "val_top1": 0.5}],
                          progress=SimpleNamespace(finished=True), training_problem=None)
    assert not run_curves(run)["collapsed"]
    assert not any("one point" in note for note in curves_section([run]).notes)
