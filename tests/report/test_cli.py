from __future__ import annotations

import json
import re
from html import unescape

import pytest

from .conftest import BASE, NORMAL, OOD, write_run


def test_table_with_four_seeds_is_exploratory(run_dsc, study):
    """n = 4 < 5 seeds: intervals and n, never a significance mark (paired p = 0.0058 used to print "**")."""
    res = run_dsc("report", study)
    assert res.code == 0, res
    lines = res.out.splitlines()
    row = next(line for line in lines if line.strip().startswith("supcon+probe/normal "))
    assert "66.3 ± 2.6" in row and "+5.0" in row and "exploratory (n=4)" in row
    assert "*" not in row and "p_Holm" not in row
    ood_row = next(line for line in lines if line.strip().startswith("supcon+probe/normal+ood"))
    assert "exploratory (n=4)" in ood_row and "n.s." not in ood_row
    assert any("ce/none (baseline)" in line for line in lines)
    assert "Training curves" in res.out and "▁" in res.out


def test_json_numbers_match_scipy(run_dsc, study):
    sst = pytest.importorskip("scipy.stats")
    res = run_dsc("report", study, "--json", "--no-curves")
    assert res.code == 0, res
    report = json.loads(res.out)
    assert report["schema"] == "dsc-report/1" and report["baseline"] == "ce/none"
    assert report["primary_metric"] == "top1" and report["statistics"]["min_seeds"] == 5
    by_name = {c["name"]: c for c in report["configurations"]}
    normal = by_name["supcon+probe/normal"]
    assert normal["seeds"] == [0, 1, 2, 3] and normal["n"] == 4
    assert normal["metrics"]["top1"]["mean"] == pytest.approx(sum(NORMAL.values()) / 4)
    for name, values in (("supcon+probe/normal", NORMAL), ("supcon+probe/normal+ood", OOD)):
        d = by_name[name]["deltas"]["top1"]
        ref = sst.ttest_rel([values[s] for s in BASE], [BASE[s] for s in BASE])
        assert d["test"] == "paired-t" and d["n"] == 4
        assert d["t"] == pytest.approx(ref.statistic) and d["p"] == pytest.approx(ref.pvalue)
        ci = ref.confidence_interval(0.95)
        assert d["ci"] == pytest.approx([ci.low, ci.high])
        assert d["role"] == "primary" and d["verdict"] == "exploratory" and d["exploratory"] and d["mark"] == ""
        assert by_name[name]["deltas"]["macro_f1"]["role"] == "secondary"
    assert report["best"]["top1"] == ["supcon+probe/normal"]
    assert "ece" not in report["best"]          # all equal: nothing highlighted
    assert "curves" not in report


def test_six_seeds_are_tested_with_holm_correction(run_dsc, tmp_path):
    """With >= 5 seeds the primary metric is tested; its p-values are Holm-adjusted over every primary
    comparison (2 configurations vs the baseline + the normal+OOD vs normal arm pair); others secondary."""
    sst = pytest.importorskip("scipy.stats")
    base = {0: 0.60, 1: 0.62, 2: 0.58, 3: 0.65, 4: 0.61, 5: 0.63}
    normal = {s: v + d for (s, v), d in zip(base.items(), (0.06, 0.03, 0.06, 0.05, 0.04, 0.05), strict=True)}
    ood = {s: v + d for (s, v), d in zip(base.items(), (0.04, 0.03, -0.02, 0.03, 0.01, 0.02), strict=True)}
    root = tmp_path / "runs"
    for s in base:
        write_run(root, f"ce-none-s{s}", seed=s, top1=base[s])
        write_run(root, f"sc-normal-s{s}", method="supcon+probe", seed=s, top1=normal[s], label="normal")
        write_run(root, f"sc-ood-s{s}", method="supcon+probe", seed=s, top1=ood[s], label="normal+ood")
    res = run_dsc("report", root, "--json", "--no-curves")
    assert res.code == 0, res
    report = json.loads(res.out)
    seeds = sorted(base)
    raw = [sst.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue
           for a, b in ((normal, base), (ood, base), (ood, normal))]
    order = sorted(range(3), key=raw.__getitem__)
    holm, running = [0.0] * 3, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * raw[i]))
        holm[i] = running
    by_name = {c["name"]: c for c in report["configurations"]}
    for name, i in (("supcon+probe/normal", 0), ("supcon+probe/normal+ood", 1)):
        d = by_name[name]["deltas"]["top1"]
        assert d["p"] == pytest.approx(raw[i]) and d["p_holm"] == pytest.approx(holm[i])
        assert d["verdict"] == "tested" and not d["exploratory"]
        assert d["mark"] == ("***" if holm[i] < 0.001 else "**" if holm[i] < 0.01 else "*" if holm[i] < 0.05
                             else "n.s.")
        sec = by_name[name]["deltas"]["macro_f1"]
        assert sec["verdict"] == "secondary" and sec["mark"] == "" and "p_holm" not in sec
    arm = next(a for a in report["arm_comparisons"] if a["kind"] == "negatives")
    assert (arm["treated"], arm["reference"]) == ("supcon+probe/normal+ood", "supcon+probe/normal")
    assert arm["p_holm"] == pytest.approx(holm[2]) and report["statistics"]["family_size"] == 3
    assert raw[2] < 0.05 and arm["mark"] == "n.s."          # p = 0.041 alone; 0.09 after Holm over 3 tests
    out = run_dsc("report", root, "--no-curves").out
    row = next(line for line in out.splitlines() if line.strip().startswith("supcon+probe/normal "))
    assert "n=6 p_Holm=<0.001 ***" in row and holm[0] < 0.001
    row = next(line for line in out.splitlines() if line.strip().startswith("supcon+probe/normal+ood"))
    assert f"n=6 p_Holm={holm[1]:.3f} n.s." in row
    assert f"(Holm-adjusted p={holm[2]:.3f} n.s., paired-t, n=6)" in out.replace("\n", " ") or \
        f"{holm[2]:.3f} n.s." in out


def test_two_seeds_never_marked_anywhere(run_dsc, tmp_path):
    """Differences of 6.1 and 6.0 pp over two seeds (paired p = 0.005): exploratory with n = 2 in the
    table, the Findings, JSON, Markdown and HTML; no "**", no "significant"."""
    root = tmp_path / "runs"
    for s, (b, d) in enumerate(((0.600, 0.061), (0.620, 0.060))):
        write_run(root, f"base{s}", seed=s, top1=b)
        write_run(root, f"syn{s}", seed=s, top1=b + d, label="normal")
    md, html = tmp_path / "r.md", tmp_path / "r.html"
    res = run_dsc("report", root, "--no-curves", "--markdown", md, "--html", html)
    assert res.code == 0, res
    html_text = unescape(re.sub(r"<[^>]+>", "", html.read_text()))
    for text in (res.out, md.read_text(), html_text):
        assert "exploratory (n=2)" in text        # the table row
        assert "exploratory, n=2 < 5 seeds" in text   # the Findings (whole in HTML too since it has real tables)
        assert "0.005" not in text and not re.search(r"p(_Holm)?=\S+ \*", text)
        assert "significant" not in text and "***" not in text     # not even the legend of the marks
    d = json.loads(run_dsc("report", root, "--json", "--no-curves").out)["configurations"][1]["deltas"]["top1"]
    assert d["p"] == pytest.approx(0.0052, abs=1e-4) and d["mark"] == "" and d["verdict"] == "exploratory"
    assert d["n"] == 2


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
    neg = rows["2. OOD negatives help SupCon+probe on top of synthetic positives? "
               "(supcon+probe/normal+ood vs supcon+probe/normal, top-1)"]
    ci = sst.ttest_rel([OOD[s] for s in BASE], [NORMAL[s] for s in BASE]).confidence_interval(0.95)
    delta = sum(OOD[s] - NORMAL[s] for s in BASE) / 4                      # -0.0425
    assert neg == (f"{100 * delta:+.1f} pp [{100 * ci.low:+.1f}, {100 * ci.high:+.1f}] "
                   "(exploratory, n=4 < 5 seeds, paired-t)")
    best = rows["3. generalises and holds up better than the baseline? (chosen on validation, reported on test)"]
    assert best.startswith("chosen on validation top-1: supcon+probe/normal (66.3 % val); "
                           "test top-1 vs ce/none: +5.0 pp [")
    assert "p=" not in best and "*" not in best and "(better)" not in best
    out = run_dsc("report", study, "--no-curves").out
    assert "Findings: the three questions" in out


def test_findings_choose_on_validation_not_test(run_dsc, tmp_path):
    """Configuration b has the best test top-1 but a worse validation top-1 than a: question 3 reports a."""
    root = tmp_path / "runs"
    for s in range(2):
        write_run(root, f"none{s}", seed=s, top1=0.60, extra={"val": {"top1": 0.60, "n": 30}})
        write_run(root, f"a{s}", seed=s, top1=0.62 + 0.01 * s, label="normal",
                  extra={"val": {"top1": 0.70, "n": 30}})
        write_run(root, f"b{s}", seed=s, top1=0.68 + 0.01 * s, label="normal", settings={"lr": 0.5},
                  extra={"val": {"top1": 0.65, "n": 30}})
    report = json.loads(run_dsc("report", root, "--json", "--no-curves").out)
    by_name = {c["name"]: c for c in report["configurations"]}
    a = next(n for n, c in by_name.items() if c["val"]["top1"]["mean"] == pytest.approx(0.70))
    assert report["selection"] == {"name": a, "by": "val.top1", "val_top1": pytest.approx(0.70)}
    assert report["best"]["top1"] != [a]                     # the test numbers would have chosen b
    q3 = next(r["answer"] for r in report["findings"] if r["question"].startswith("3."))
    assert q3.startswith(f"chosen on validation top-1: {a} (70.0 % val); test top-1 vs ce/none: +2.5 pp")
    out = run_dsc("report", root, "--no-curves").out
    assert "val top-1" in out and "only number used to choose a configuration" in out


def test_findings_without_validation_numbers_choose_nothing(run_dsc, tmp_path):
    root = tmp_path / "runs"
    for s in range(2):
        write_run(root, f"none{s}", seed=s, top1=0.6, extra={"val": {"n": 0}})
        write_run(root, f"syn{s}", seed=s, top1=0.7, label="normal", extra={"val": {"n": 0}})
    report = json.loads(run_dsc("report", root, "--json", "--no-curves").out)
    assert report["selection"] is None
    q3 = next(r["answer"] for r in report["findings"] if r["question"].startswith("3."))
    assert q3.startswith("no validation top-1 recorded")


def test_negatives_only_runs_are_the_ood_arm(run_dsc, tmp_path):
    """Runs with OOD negatives and no synthetic positives are grouped as ``ood`` (also old runs that recorded
    ``normal+ood``, with a warning naming them) and compared with ``none`` under their true name."""
    root = tmp_path / "runs"
    for s in range(3):
        write_run(root, f"none{s}", seed=s, top1=0.60 + 0.01 * s)
        write_run(root, f"neg{s}", seed=s, top1=0.63 + 0.01 * s, label="ood")
    old = write_run(root, "neg-old", seed=3, top1=0.66, label="ood")
    metrics = json.loads((old / "metrics.json").read_text())
    metrics["synthetic"]["label"] = "normal+ood"                   # what dsc wrote before the fix
    (old / "metrics.json").write_text(json.dumps(metrics))
    res = run_dsc("report", root, "--json", "--no-curves")
    assert res.code == 0, res
    report = json.loads(res.out)
    by_name = {c["name"]: c for c in report["configurations"]}
    assert set(by_name) == {"ce/none", "ce/ood"} and by_name["ce/ood"]["n"] == 4
    assert by_name["ce/ood"]["synthetic_label"] == "OOD (outlier-exposure)"
    assert any(str(old) in w and "'normal+ood'" in w and "shown as 'ood'" in w for w in report["warnings"])
    rows = {r["question"]: r["answer"] for r in report["findings"]}
    assert "2. OOD negatives help CE? (ce/ood vs ce/none, top-1)" in rows
    assert not any("normal+OOD" in q or "normal+ood" in q for q in rows)


def test_runs_sharing_a_seed_are_refused_naming_both(run_dsc, tmp_path):
    root = tmp_path / "runs"
    write_run(root, "a", seed=0, top1=0.6)
    write_run(root, "b", seed=1, top1=0.7)
    write_run(root, "copy-of-a", seed=0, top1=0.9)
    res = run_dsc("report", root)
    assert res.code == 1 and res.err.startswith("Error:") and "Traceback" not in res.err
    assert str(root / "a") in res.err and str(root / "copy-of-a") in res.err and "seed 0" in res.err


def test_primary_metric_option(run_dsc, study):
    report = json.loads(run_dsc("report", study, "--primary-metric", "macro_f1", "--json", "--no-curves").out)
    assert report["primary_metric"] == "macro_f1"
    normal = next(c for c in report["configurations"] if c["name"] == "supcon+probe/normal")
    assert normal["deltas"]["macro_f1"]["role"] == "primary" and "p_holm" in normal["deltas"]["macro_f1"]
    assert normal["deltas"]["top1"]["role"] == "secondary"
    assert any(r["question"].endswith("F1)") for r in report["findings"])
    out = run_dsc("report", study, "--primary-metric", "macro_f1", "--no-curves").out
    assert "Δ F1 (pp, primary)" in out
    res = run_dsc("report", study, "--primary-metric", "top5")
    assert res.code == 1 and res.err.startswith("Error:") and "primary_metric" in res.err
