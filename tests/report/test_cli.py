from __future__ import annotations

import json

import pytest

from .conftest import BASE, NORMAL, OOD, write_run


def test_table_groups_seeds_and_marks_significance(run_dsc, study):
    res = run_dsc("report", study)
    assert res.code == 0, res
    lines = res.out.splitlines()
    row = next(line for line in lines if line.strip().startswith("supcon+probe/normal "))
    assert "66.3 ± 2.6" in row and "+5.0" in row and "**" in row     # p = 0.0058 (paired t, 3 df)
    assert any("ce/none (baseline)" in line for line in lines)
    ood_row = next(line for line in lines if line.strip().startswith("supcon+probe/normal+ood"))
    assert "n.s." in ood_row
    assert "Training curves" in res.out and "▁" in res.out


def test_json_numbers_match_scipy(run_dsc, study):
    sst = pytest.importorskip("scipy.stats")
    res = run_dsc("report", study, "--json", "--no-curves")
    assert res.code == 0, res
    report = json.loads(res.out)
    assert report["schema"] == "dsc-report/1" and report["baseline"] == "ce/none"
    by_name = {c["name"]: c for c in report["configurations"]}
    normal = by_name["supcon+probe/normal"]
    assert normal["seeds"] == [0, 1, 2, 3] and normal["n"] == 4
    assert normal["metrics"]["top1"]["mean"] == pytest.approx(sum(NORMAL.values()) / 4)
    for name, values in (("supcon+probe/normal", NORMAL), ("supcon+probe/normal+ood", OOD)):
        d = by_name[name]["deltas"]["top1"]
        ref = sst.ttest_rel([values[s] for s in BASE], [BASE[s] for s in BASE])
        assert d["test"] == "paired-t" and d["n"] == 4
        assert d["t"] == pytest.approx(ref.statistic) and d["p"] == pytest.approx(ref.pvalue)
    assert report["best"]["top1"] == ["supcon+probe/normal"]
    assert "ece" not in report["best"]          # all equal: nothing highlighted
    assert "curves" not in report


def test_exports_and_overwrite(run_dsc, study, tmp_path):
    md, html = tmp_path / "r.md", tmp_path / "r.html"
    res = run_dsc("report", study, "--markdown", md, "--html", html, "--per-class")
    assert res.code == 0, res
    text = md.read_text()
    assert "| supcon+probe/normal |" in text and "**66.3 ± 2.6**" in text
    assert "Most confused class pairs" in text and "| nut | bolt |" in text
    assert "<html" in html.read_text().lower() and "supcon+probe/normal" in html.read_text()
    res = run_dsc("report", study, "--markdown", md)
    assert res.code == 1 and "already exists" in res.err and "--force" in res.err
    assert run_dsc("report", study, "--markdown", md, "--force").code == 0


def test_per_class_side_by_side(run_dsc, tmp_path):
    root = tmp_path / "runs"
    for s in (0, 1):
        write_run(root, f"a{s}", seed=s, per_class={"gear": 0.5, "bolt": 0.9, "nut": 0.1 * s})
        write_run(root, f"b{s}", seed=s, label="normal", per_class={"gear": 0.7, "bolt": 0.8, "nut": 0.4})
    res = run_dsc("report", root, "--per-class", "--json", "--no-curves")
    data = json.loads(res.out)["per_class"]
    assert data["accuracy"]["ce/none"]["nut"] == pytest.approx(0.05)
    assert data["accuracy"]["ce/normal"]["gear"] == pytest.approx(0.7)
    top = data["confused"]["ce/none"][0]
    assert (top["true"], top["predicted"], top["count"]) == ("nut", "bolt", 6)
    assert top["share"] == pytest.approx(6 / 20)


def test_incomplete_run_is_listed_not_fatal(run_dsc, study):
    (study / "half" / "checkpoints").mkdir(parents=True)
    res = run_dsc("report", study)
    assert res.code == 0, res
    assert "Incomplete runs" in res.out and "half" in res.out


def test_only_incomplete_runs(run_dsc, tmp_path):
    (tmp_path / "r" / "checkpoints").mkdir(parents=True)
    res = run_dsc("report", tmp_path / "r", "--json")
    assert res.code == 0, res
    report = json.loads(res.out)
    assert report["configurations"] == [] and report["incomplete"][0]["run"] == "r"


def test_mixed_stores_warn_or_refuse(run_dsc, tmp_path):
    root = tmp_path / "runs"
    write_run(root, "a", seed=0, fingerprint="fp-one")
    write_run(root, "b", seed=1, fingerprint="fp-two")
    res = run_dsc("report", root)
    assert res.code == 0
    assert "different DATA.h5" in res.err and "fp-one" in res.err and "fp-two" in res.err
    assert str(root / "a") in res.err
    res = run_dsc("report", root, "--strict")
    assert res.code == 1 and res.err.startswith("Error:") and "different DATA.h5" in res.err
    assert "Traceback" not in res.err


def test_empty_and_missing_inputs(run_dsc, tmp_path):
    (tmp_path / "empty").mkdir()
    res = run_dsc("report", tmp_path / "empty")
    assert res.code == 1 and "no run directories found" in res.err
    res = run_dsc("report")
    assert res.code == 1 and "nothing to report" in res.err
    res = run_dsc("report", tmp_path / "nope")
    assert res.code == 1 and "does not exist" in res.err


def test_unknown_baseline_lists_configurations(run_dsc, study):
    res = run_dsc("report", study, "--baseline", "resnet-only")
    assert res.code == 1
    assert "matches no configuration" in res.err
    assert "ce/none" in res.err and "supcon+probe/normal+ood" in res.err


def test_other_baseline_and_env_setting(run_dsc, study, monkeypatch):
    res = run_dsc("report", study, "--baseline", "supcon+probe/normal", "--json", "--no-curves")
    report = json.loads(res.out)
    assert report["baseline"] == "supcon+probe/normal"
    ce = next(c for c in report["configurations"] if c["name"] == "ce/none")
    assert ce["deltas"]["top1"]["delta"] == pytest.approx(-0.05) and ce["deltas"]["top1"]["better"] is False
    monkeypatch.setenv("DSC_REPORT__CURVES", "false")
    assert "Training curves" not in run_dsc("report", study).out


def test_robustness_and_ood_columns(run_dsc, tmp_path):
    root = tmp_path / "runs"
    for s, (acc, auroc) in enumerate(((0.5, 0.7), (0.52, 0.72))):
        per = {"gaussian_noise": {"1": acc, "2": acc - 0.1}}
        extra = {"robustness": {"clean_top1": 0.6, "mean_corruption_top1": acc - 0.05, "per_corruption": per},
                 "ood": {"holdout": {"msp": {"auroc": auroc, "fpr95": 0.5}}}}
        write_run(root, f"base{s}", seed=s, extra=extra)
        per2 = {"gaussian_noise": {"1": acc + 0.1, "2": acc}}
        extra2 = {"robustness": {"clean_top1": 0.6, "mean_corruption_top1": acc + 0.05, "per_corruption": per2},
                  "ood": {"holdout": {"msp": {"auroc": auroc + 0.1, "fpr95": 0.4}}}}
        write_run(root, f"syn{s}", seed=s, label="normal", extra=extra2)
    res = run_dsc("report", root, "--json", "--no-curves")
    report = json.loads(res.out)
    syn = next(c for c in report["configurations"] if c["name"] == "ce/normal")
    assert syn["metrics"]["ood_auroc"]["mean"] == pytest.approx(0.81)
    # errors: base (0.49 + 0.59), syn (0.39 + 0.49) -> 0.88 / 1.08
    assert syn["relative_corruption_error"] == pytest.approx(0.88 / 1.08)
    assert report["best"]["ood_fpr95"] == ["ce/normal"]
    out = run_dsc("report", root, "--no-curves").out
    assert "OOD AUROC" in out and "rel. CE" in out and "0.81" in out


def test_findings_answer_the_questions(run_dsc, study):
    sst = pytest.importorskip("scipy.stats")
    res = run_dsc("report", study, "--json", "--no-curves")
    rows = {r["question"]: r["answer"] for r in json.loads(res.out)["findings"]}
    neg = rows["2. OOD negatives help SupCon+probe? (normal+OOD vs normal, top-1)"]
    p = sst.ttest_rel([OOD[s] for s in BASE], [NORMAL[s] for s in BASE]).pvalue
    delta = sum(OOD[s] - NORMAL[s] for s in BASE) / 4                      # -0.0425
    assert neg.startswith(f"{100 * delta:+.1f} pp") and f"p={p:.3f} *" in neg
    best = rows["3. generalises and holds up better than the baseline?"]
    assert best.startswith("best top-1: supcon+probe/normal (66.3 %), +5.0 pp (p=0.006 **")
    out = run_dsc("report", study, "--no-curves").out
    assert "Findings: the three questions" in out
