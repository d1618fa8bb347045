"""`dsc study --executor processes`: the runs of a study several at a time in worker processes, with the
same results as one after another (`local`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsc.study.executors import shares
from dsc.testing import pattern_store

STUDY = """
[study]
data = "{data}"
output = "{out}"
seeds = [0, 1]
methods = ["ce", "supcon"]
variants = ["none"]

[train]
backbone = "timm:test_resnet"
image_size = 16
epochs = 2
batch_size = 8

[baseline]
corruptions = false

[probe]
epochs = 5
corruptions = false
"""


def test_shares_are_disjoint_and_cover_the_cores() -> None:
    plan = shares(2, [0, 1, 2, 3, 4])
    assert [p["cpus"] for p in plan] == [[0, 2, 4], [1, 3]] and all(p["gpu"] is None for p in plan)
    assert [p["cpus"] for p in shares(3, [0, 1])] == [[0], [1], [0]]   # more workers than cores: shared
    assert [p["gpu"] for p in shares(3, [0, 1, 2, 3], gpus=2)] == [0, 1, 0]


def _metrics(out: Path) -> dict[str, dict]:
    """Every run's test and validation numbers (what a report compares), by run name."""
    found = {}
    for path in sorted(out.glob("*/metrics.json")) + sorted(out.glob("*/probe/metrics.json")):
        m = json.loads(path.read_text())
        found[m["run"]] = {"test": m["test"], "val": m["val"], "selected_epoch": m["selected_epoch"]}
    return found


@pytest.mark.slow
def test_processes_give_the_results_of_local(run_dsc, tmp_path: Path) -> None:
    data = pattern_store(tmp_path / "data.h5", per_class=(6, 2, 2))
    results = {}
    for executor in ("local", "processes"):
        study = tmp_path / f"{executor}.toml"
        study.write_text(STUDY.format(data=data, out=tmp_path / executor))
        args = ["--threads", "1"] if executor == "local" else []   # the workers compute with one core each
        res = run_dsc(*args, "study", study, "--executor", executor, "--jobs", "2", "--no-report")
        assert res.code == 0, res
        results[executor] = _metrics(tmp_path / executor)
        if executor == "processes":
            assert "4 runs, 2 at a time in worker processes" in res.err and "4/4:" in res.err
    assert len(results["local"]) == 4 and results["processes"] == results["local"]


def test_bad_executor_and_jobs(run_dsc, tmp_path: Path) -> None:
    data = pattern_store(tmp_path / "data.h5", per_class=(6, 2, 2))
    study = tmp_path / "s.toml"
    study.write_text(STUDY.format(data=data, out=tmp_path / "out"))
    res = run_dsc("study", study, "--executor", "slurmm")
    assert res.code != 0 and "unknown executor 'slurmm'" in res.err and "local, processes" in res.err
    res = run_dsc("study", study, "--executor", "processes", "--jobs", "0")
    assert res.code != 0 and "--jobs must be at least 1" in res.err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_slurm_job_array_through_submitit_gives_the_results_of_local(run_dsc, tmp_path: Path) -> None:
    """The slurm executor's job array, run on this machine by submitit's local cluster ([slurm] cluster =
    "local"): the same metrics as the runs one after another, logs in <output>/.slurm."""
    pytest.importorskip("submitit")
    data = pattern_store(tmp_path / "data.h5", per_class=(6, 2, 2))
    results = {}
    for executor in ("local", "slurm"):
        study = tmp_path / f"{executor}.toml"
        slurm = '\n[slurm]\ncluster = "local"\ncpus_per_task = 1\ntimeout_min = 10\n' if executor == "slurm" else ""
        study.write_text(STUDY.format(data=data, out=tmp_path / executor) + slurm)
        res = run_dsc("--threads", "1", "study", study, "--executor", executor, "--no-report")
        assert res.code == 0, res
        results[executor] = _metrics(tmp_path / executor)
    assert len(results["local"]) == 4 and results["slurm"] == results["local"]
    assert (tmp_path / "slurm" / ".slurm").is_dir()


def test_a_bad_slurm_table_is_refused_before_anything_runs(run_dsc, tmp_path: Path) -> None:
    data = pattern_store(tmp_path / "data.h5", per_class=(6, 2, 2))
    study = tmp_path / "s.toml"
    study.write_text(STUDY.format(data=data, out=tmp_path / "out") + '\n[slurm]\npartiton = "gpu"\n')
    res = run_dsc("study", study, "--executor", "slurm")
    assert res.code != 0 and "slurm.partiton" in res.err and not (tmp_path / "out").exists()
