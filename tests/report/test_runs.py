from __future__ import annotations

import json

import pytest

from dsc.errors import InputError
from dsc.report.group import arm_pairs, config_key, find_baseline, group_runs, relabelled, synthetic_of
from dsc.report.runs import discover, load_run

from .conftest import BASE, write_run


def test_discover_recurses_two_levels_and_keeps_incomplete(study):
    (study / "deep" / "er" / "run").mkdir(parents=True)
    (study / "deep" / "er" / "run" / "run.json").write_text("{}")   # three levels down: not found
    bad = study / "supcon" / "crashed"
    bad.mkdir()
    (bad / "run.json").write_text(json.dumps({"command": "dsc pretrain", "status": "failed", "error": "NaN"}))
    runs = discover([study])
    names = {r.name for r in runs}
    assert len([r for r in runs if r.complete]) == 12
    assert "crashed" in names and "run" not in names
    crashed = next(r for r in runs if r.name == "crashed")
    assert not crashed.complete and "failed" in crashed.problem and "NaN" in crashed.problem


@pytest.mark.parametrize("content, reason", [
    (None, "no probe/metrics.json"),
    ("{not json", "not valid JSON"),
    (json.dumps({"schema": "other/9", "test": {"top1": 1}}), "unknown schema"),
    (json.dumps({"schema": "dsc-metrics/1", "test": {}}), "no test.top1"),
])
def test_incomplete_runs_have_a_reason(tmp_path, content, reason):
    run = tmp_path / "r"
    (run / "checkpoints").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"command": "dsc pretrain", "status": "complete"}))
    if content is not None:
        (run / "probe").mkdir()
        (run / "probe" / "metrics.json").write_text(content)
    r = load_run(run)
    assert not r.complete and reason in r.problem


def test_discover_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        discover([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no run directories found"):
        discover([tmp_path / "empty"])


def test_grouping_ignores_seed_and_worker_settings(tmp_path):
    a = load_run(write_run(tmp_path, "a", seed=0, settings={"workers": 0}))
    b = load_run(write_run(tmp_path, "b", seed=1, settings={"workers": 4}))
    c = load_run(write_run(tmp_path, "c", seed=0, settings={"epochs": 9}))
    d = load_run(write_run(tmp_path, "d", seed=0, label="normal"))
    assert config_key(a) == config_key(b)
    assert config_key(a) != config_key(c) and config_key(a) != config_key(d)
    groups = group_runs([a, b, c, d])
    assert [len(g.runs) for g in groups].count(2) == 1
    names = [g.name for g in groups]
    assert len(set(names)) == len(names)             # clashing ce/none groups were disambiguated
    assert "ce/normal" in names


def test_group_names_and_baseline_lookup(study):
    groups = group_runs(discover([study]))
    assert [g.name for g in groups] == ["ce/none", "supcon+probe/normal", "supcon+probe/normal+ood"]
    assert [g.seeds for g in groups] == [[0, 1, 2, 3]] * 3
    assert find_baseline(groups, None).name == "ce/none"
    assert find_baseline(groups, "SUPCON+PROBE/NORMAL").name == "supcon+probe/normal"
    assert find_baseline(groups, str(study / "ce-none-s2")).name == "ce/none"
    with pytest.raises(InputError, match="matches no configuration") as exc:
        find_baseline(groups, "resnet")
    assert "ce/none" in str(exc.value) and "supcon+probe/normal+ood" in str(exc.value)
    with pytest.raises(InputError, match="several"):
        find_baseline(groups, "supcon")


def test_values_per_seed(study):
    g = group_runs(discover([study]))[0]
    assert g.values(lambda m: m["test"]["top1"]) == BASE


def test_arm_pairs_compare_within_a_method_and_name_true_arms(tmp_path):
    for s in (0, 1):
        for label in ("none", "normal", "ood", "normal+ood"):
            write_run(tmp_path, f"ce-{label}-s{s}", seed=s, label=label)
        for label in ("none", "normal+ood"):
            write_run(tmp_path, f"sc-{label}-s{s}", method="supcon+probe", seed=s, label=label)
    groups = group_runs(discover([tmp_path]))
    assert [g.name for g in groups] == ["ce/none", "ce/normal", "ce/ood", "ce/normal+ood", "supcon+probe/none",
                                        "supcon+probe/normal+ood"]
    pairs = [(kind, a.name, b.name) for kind, a, b in arm_pairs(groups)]
    assert pairs == [("positives", "ce/normal", "ce/none"), ("negatives", "ce/normal+ood", "ce/normal"),
                     ("negatives-only", "ce/ood", "ce/none"),
                     ("both", "supcon+probe/normal+ood", "supcon+probe/none")]   # no normal arm for supcon


def test_arm_comes_from_the_stores_used_not_the_recorded_label(tmp_path):
    run = write_run(tmp_path, "old", label="ood")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["synthetic"]["label"] = "normal+ood"          # written by dsc before the ood arm had its name
    (run / "metrics.json").write_text(json.dumps(metrics))
    loaded = load_run(run)
    assert synthetic_of(loaded)["label"] == "ood" and "shown as 'ood'" in relabelled(loaded)
    assert relabelled(load_run(write_run(tmp_path, "new", label="ood"))) is None
