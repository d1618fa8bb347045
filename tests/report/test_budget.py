"""The Training budget table and the warning about compared runs that trained unequal amounts."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import write_run


def _budget(run: Path, steps: int | None, images: int | None, kind: str = "epochs", value: int = 3,
            history_steps: int | None = None) -> None:
    """Give a hand-made run the training record `dsc pretrain` / `dsc baseline` write."""
    info = json.loads((run / "run.json").read_text())
    if steps is not None:
        info.update(optimizer_steps=steps, images_seen=images, passes=1.5,
                    budget={"kind": kind, "value": value, "total_steps": steps})
    (run / "run.json").write_text(json.dumps(info))
    if history_steps is not None:
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        rows[-1]["step"] = history_steps
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _study(root: Path, normal_steps: int, *, ood_steps: int = 480, seeds=(0, 1)) -> Path:
    for s in seeds:
        _budget(write_run(root, f"ce-none-s{s}", seed=s, top1=0.6), 480, 480 * 32)
        _budget(write_run(root, f"ce-normal-s{s}", seed=s, top1=0.65, label="normal"), normal_steps,
                normal_steps * 32)
        _budget(write_run(root, f"ce-ood-s{s}", seed=s, top1=0.61, label="ood"), ood_steps, ood_steps * 32,
                kind="steps", value=ood_steps)
    return root


def test_unequal_steps_are_shown_and_warned_about(run_dsc, tmp_path):
    """The normal arm under an epochs budget: 11x the steps of none (M = 10 variants per image)."""
    root = _study(tmp_path / "runs", 5280)
    res = run_dsc("report", root, "--json", "--no-curves")
    assert res.code == 0, res
    report = json.loads(res.out)
    budget = report["budget"]
    assert budget["configurations"]["ce/normal"]["optimizer_steps"] == 5280
    assert budget["configurations"]["ce/none"]["runs"]["ce-none-s1"]["images_seen"] == 480 * 32
    assert [(d["configuration"], d["reference"]) for d in budget["unequal"]] == [("ce/normal", "ce/none")]
    assert budget["unequal"][0]["optimizer_steps"]["ratio"] == 11.0
    warning = next(w for w in report["warnings"] if w.startswith("ce/normal trained"))
    assert "11.00x the optimizer steps (5280 vs 480 per run)" in warning and "--allow-unequal-budget" in warning
    text = run_dsc("report", root, "--no-curves")
    assert text.code == 0 and "Training budget" in text.out and "ce/normal trained 11.00x" in text.err
    table = text.out.split("Training budget", 1)[1].splitlines()
    row = next(line for line in table if line.strip().startswith("ce/ood"))
    assert "480 steps" in row and "15360" in row
    quiet = run_dsc("report", root, "--json", "--no-curves", "--allow-unequal-budget")
    report = json.loads(quiet.out)
    assert quiet.code == 0 and not any("trained" in w for w in report["warnings"])
    assert report["budget"]["allowed_unequal"] and len(report["budget"]["unequal"]) == 1


def test_within_five_percent_is_equal(run_dsc, tmp_path):
    root = _study(tmp_path / "runs", 500, ood_steps=470)          # +4.2 % and -2.1 %
    report = json.loads(run_dsc("report", root, "--json", "--no-curves").out)
    assert report["budget"]["unequal"] == [] and not any("trained" in w for w in report["warnings"])
    root = _study(tmp_path / "runs2", 480, ood_steps=505)         # +5.2 %: unequal
    report = json.loads(run_dsc("report", root, "--json", "--no-curves").out)
    assert [d["configuration"] for d in report["budget"]["unequal"]] == ["ce/ood"]


def test_older_runs_fall_back_to_the_last_logged_step(tmp_path):
    from dsc.report import make_report
    from dsc.settings import ReportSettings

    root = tmp_path / "runs"
    _budget(write_run(root, "ce-none-s0", top1=0.6), None, None, history_steps=30)
    _budget(write_run(root, "ce-normal-s0", top1=0.7, label="normal"), None, None, history_steps=330)
    result = make_report([root], ReportSettings(curves=False))
    section = next(s for s in result.sections if s.title == "Training budget")
    assert [c.text for c in section.rows[1]][:4] == ["ce/normal", "3 epochs", "330", "–"]
    assert any("11.00x the optimizer steps (330 vs 30" in w for w in result.warnings)


def test_no_section_without_any_record(tmp_path):
    from dsc.report import make_report
    from dsc.settings import ReportSettings

    root = tmp_path / "runs"
    write_run(root, "ce-none-s0")
    write_run(root, "ce-normal-s0", label="normal")
    result = make_report([root], ReportSettings(curves=False))
    assert all(s.title != "Training budget" for s in result.sections) and "budget" not in result.report
