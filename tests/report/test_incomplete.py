"""Runs whose training did not finish: listed with how far they got and how to resume; when they have
metrics anyway (`dsc probe --allow-incomplete`), marked in every table and in the JSON warnings."""

from __future__ import annotations

import json
from pathlib import Path

from dsc.report.runs import load_run, training_progress

from .conftest import write_run


def _interrupt(run: Path, *, done: int, epochs: int = 30, status: str = "interrupted",
               command: str = "dsc pretrain data.h5 --output runs/x --epochs 30 --force") -> None:
    """Make a run look as `dsc pretrain` leaves it when stopped after ``done`` epochs."""
    info = json.loads((run / "run.json").read_text())
    info.update(status=status, command=command)
    for section in info["settings"].values():
        section["epochs"] = epochs
    (run / "run.json").write_text(json.dumps(info))
    (run / "checkpoints").mkdir(exist_ok=True)
    (run / "checkpoints" / "last.json").write_text(json.dumps({"epoch": done, "step": 10 * done}))


def test_interrupted_run_without_metrics_says_where_and_how_to_resume(tmp_path):
    run = write_run(tmp_path, "r", method="supcon+probe")
    (run / "probe" / "metrics.json").unlink()
    _interrupt(run, done=3)
    r = load_run(run)
    assert not r.complete
    assert r.problem == ("interrupted at epoch 3 of 30: resume with "
                         "`dsc pretrain data.h5 --output runs/x --epochs 30 --resume`")


def test_progress_falls_back_to_metrics_jsonl_and_a_generic_command(tmp_path):
    run = write_run(tmp_path, "r", method="supcon+probe", history=5)     # epochs 0..4 in metrics.jsonl
    (run / "probe" / "metrics.json").unlink()
    info = json.loads((run / "run.json").read_text())
    info.update(status="running", command="pytest -q")
    (run / "run.json").write_text(json.dumps(info))
    p = training_progress(run, info, "pretrain")
    assert (p.status, p.epochs_done, p.epochs) == ("running", 4, 3)
    assert p.resume_command == f"dsc pretrain ... --output {run} --resume"
    assert "not finished at epoch 4 of 3" in load_run(run).problem


def test_failed_run_keeps_its_error(tmp_path):
    run = write_run(tmp_path, "r", method="ce")
    (run / "metrics.json").unlink()
    _interrupt(run, done=2, status="failed", command="dsc baseline d.h5 -o r")
    info = json.loads((run / "run.json").read_text())
    info["error"] = "the loss became nan"
    (run / "run.json").write_text(json.dumps(info))
    problem = load_run(run).problem
    assert problem.startswith("failed at epoch 2 of 30 (the loss became nan): fix the cause")
    assert "`dsc baseline d.h5 -o r --resume`" in problem


def _study_with_one_unfinished(root: Path) -> Path:
    for s in (0, 1):
        write_run(root, f"ce-{s}", method="ce", seed=s, top1=0.6 + s / 100)
        write_run(root, f"sc-{s}", method="supcon+probe", seed=s, top1=0.7 + s / 100, label="normal",
                  settings={"epochs": 30}, extra={"training": {"status": "complete", "epochs_done": 30,
                                                               "epochs": 30}})
    bad = root / "sc-1"
    m = json.loads((bad / "probe" / "metrics.json").read_text())
    m["training"] = {"status": "interrupted", "epochs_done": 3, "epochs": 30}   # probed with --allow-incomplete
    (bad / "probe" / "metrics.json").write_text(json.dumps(m))
    _interrupt(bad, done=3)
    return bad


def test_report_marks_a_probed_unfinished_run_in_every_table_and_warns(run_dsc, tmp_path):
    bad = _study_with_one_unfinished(tmp_path / "runs")
    res = run_dsc("report", tmp_path / "runs", "--json", "--per-class")
    assert res.code == 0, res
    report = json.loads(res.out)
    names = [c["name"] for c in report["configurations"]]
    assert names == ["ce/none", "supcon+probe/normal (incomplete)"]
    assert report["baseline"] == "ce/none"
    assert any(str(bad) in w and "interrupted at epoch 3 of 30" in w for w in report["warnings"])
    sc = report["configurations"][1]
    assert any("sc-1" in n and "interrupted at epoch 3 of 30" in n for n in sc["notes"])
    assert "supcon+probe/normal (incomplete)" in report["per_class"]["accuracy"]

    res = run_dsc("report", tmp_path / "runs", "--per-class")
    assert res.code == 0, res
    lines = res.out.splitlines()
    assert any(line.strip().startswith("supcon+probe/normal (incomplete)") for line in lines)   # comparison
    header = next(line for line in lines if line.strip().startswith("class "))                 # per class
    assert "(incomplete)" in header
    curves = next(line for line in lines if line.strip().startswith("sc-1"))                    # curves
    assert "(incomplete)" in curves
    assert not any(line.strip().startswith("sc-0 (incomplete)") for line in lines)


def test_probe_of_an_unfinished_training_stays_marked_after_the_training_finishes(tmp_path):
    run = write_run(tmp_path, "r", method="supcon+probe",
                    extra={"training": {"status": "interrupted", "epochs_done": 3, "epochs": 30}})
    problem = load_run(run).training_problem     # run.json says complete now (resumed to the end)
    assert problem == (f"probed after its training was interrupted at epoch 3 of 30; the training has finished "
                       f"since: re-probe with `dsc probe {run} --force`")


def test_run_restarted_after_its_probe_is_still_marked(tmp_path):
    """run.json says running (resumed or restarted after the probe): the metrics are of another model."""
    run = write_run(tmp_path, "r", method="supcon+probe")
    _interrupt(run, done=5, status="running")
    problem = load_run(run).training_problem
    assert problem and "not finished at epoch 5 of 30" in problem
    assert load_run(write_run(tmp_path, "ok", method="supcon+probe")).training_problem is None
