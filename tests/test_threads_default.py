"""dsc/threads.py: the default thread count fits the cores, the processes and the load; explicit settings win."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsc import threads
from dsc.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "LOCAL_WORLD_SIZE", "DSC_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(threads, "_WRITTEN", None)
    monkeypatch.setattr(threads, "_CHOICE", None)


@pytest.mark.parametrize(("cores", "processes", "idle", "want"), [
    (2, 1, None, 2),      # idle unknown: every core
    (2, 1, 1.0, 2),       # idle machine
    (2, 1, 0.05, 1),      # busy shared machine: the measured 29x case
    (2, 1, 0.6, 1),       # one core busy
    (16, 1, 0.5, 8),      # half the cores idle
    (16, 4, 1.0, 4),      # four processes on the machine share the cores
    (16, 4, 0.5, 2),
    (2, 4, 1.0, 1),       # more processes than cores
    (1, 1, 0.0, 1),
])
def test_default_threads(cores: int, processes: int, idle: float | None, want: int) -> None:
    assert threads.default_threads(cores, processes, idle) == want


def test_choose_divides_cores_among_local_processes() -> None:
    choice = threads.choose(env={"LOCAL_WORLD_SIZE": "2"}, cores=8, idle=1.0)
    assert (choice.intra_op, choice.source, choice.processes) == (4, "default", 2)
    assert "8 cores / 2 processes" in choice.reason


def test_choose_uses_affinity_and_idle_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "affinity", lambda: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "physical_cores", lambda cpus: len(cpus))
    monkeypatch.setattr(threads, "cgroup_quota", lambda: None)
    monkeypatch.setattr(threads, "idle_share", lambda: 0.5)
    choice = threads.choose(env={})
    assert (choice.intra_op, choice.cores, choice.idle) == (2, 4, 0.5)
    monkeypatch.setattr(threads, "cgroup_quota", lambda: 1)  # a container limited to one core
    assert threads.choose(env={}).intra_op == 1


def test_explicit_settings_win() -> None:
    assert threads.choose(3, env={"OMP_NUM_THREADS": "1"}, cores=2, idle=0.0).intra_op == 3
    dsc_env = threads.choose(env={"DSC_THREADS": "2", "OMP_NUM_THREADS": "1"}, cores=2, idle=0.0)
    assert (dsc_env.intra_op, dsc_env.source) == (2, "DSC_THREADS")
    omp = threads.choose(env={"OMP_NUM_THREADS": "5"}, cores=2, idle=0.0)
    assert (omp.intra_op, omp.source) == (5, "OMP_NUM_THREADS")


def test_bad_values_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="DSC_THREADS must be a whole number"):
        threads.choose(env={"DSC_THREADS": "many"})
    with pytest.raises(ConfigError, match="--threads must be at least 1"):
        threads.choose(0)


def test_configure_keeps_the_users_omp_and_does_not_mistake_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # as in the CLI: torch not loaded yet
    monkeypatch.setattr(threads, "choose", _fake_choose(threads.choose))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.configure().source == "OMP_NUM_THREADS"
    assert os.environ["OMP_NUM_THREADS"] == "3"
    monkeypatch.delenv("OMP_NUM_THREADS")
    first = threads.configure()
    assert first.source == "default" and os.environ["OMP_NUM_THREADS"] == str(first.intra_op)
    assert threads.configure().source == "default"  # dsc's own value is not the user's


def _fake_choose(real):
    def choose(requested=None, **kw):
        return real(requested, cores=2, idle=1.0, **kw)
    return choose


def test_physical_cores_and_quota(tmp_path: Path) -> None:
    for cpu, core in ((0, 0), (1, 0), (2, 1), (3, 1)):  # two cores with two hyper-threads each
        topo = tmp_path / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "core_id").write_text(f"{core}\n")
        (topo / "physical_package_id").write_text("0\n")
    assert threads.physical_cores({0, 1, 2, 3}, tmp_path) == 2
    assert threads.physical_cores({0, 7}, tmp_path) == 2  # topology unreadable: count the CPUs
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")
    assert threads.cgroup_quota(quota) == 2
    quota.write_text("max 100000\n")
    assert threads.cgroup_quota(quota) is None


def test_idle_share_reads_proc_stat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stat = tmp_path / "stat"
    samples = iter([
        "cpu  1 2 3 4\ncpu0 100 0 0 100 0 0 0 0 0 0\ncpu1 100 0 0 100 0 0 0 0 0 0\n",
        "cpu  1 2 3 4\ncpu0 190 0 0 110 0 0 0 0 0 0\ncpu1 110 0 0 190 0 0 0 0 0 0\n",
    ])
    monkeypatch.setattr(threads.time, "sleep", lambda s: stat.write_text(next(samples)))
    stat.write_text(next(samples))
    assert threads.idle_share({0, 1}, stat=stat) == pytest.approx(0.5)
    stat.write_text("cpu0 100 0 0 100 0 0 0 0 0 0\ncpu1 100 0 0 100 0 0 0 0 0 0\n")
    samples = iter(["cpu0 190 0 0 110 0 0 0 0 0 0\ncpu1 110 0 0 190 0 0 0 0 0 0\n"])
    assert threads.idle_share({1}, stat=stat) == pytest.approx(0.9)


def test_default_reaches_torch_through_the_environment(tmp_path: Path) -> None:
    """In the CLI torch loads after the choice: it takes the count from OMP_NUM_THREADS (fresh process)."""
    script = ("import json, sys; from dsc import threads; c = threads.configure(); import torch; "
              "print(json.dumps([c.intra_op, c.source, torch.get_num_threads(), threads.record()]))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "DSC_THREADS")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                         check=True).stdout
    intra, source, torch_threads, record = json.loads(out.splitlines()[-1])
    assert source == "default" and torch_threads == intra >= 1
    assert record["torch_intra_op"] == intra and record["cores"] >= 1
