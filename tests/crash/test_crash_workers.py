"""SIGKILL one worker of `dsc study --executor processes` in the middle of a run: the study stops with one
line saying so, and the rerun loses nothing and repeats nothing (every run ends as an uninterrupted study's,
epoch for epoch)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dsc.testing import clean_env, dsc_cmd
from tests.crash.conftest import SEED, assert_nothing_corrupt, metrics_lines, same_runs
from tests.crash.test_crash import STUDY

pytestmark = pytest.mark.slow


def _workers(parent: int) -> list[int]:
    """The pool's worker processes of ``parent`` (spawned children; not its resource tracker)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in cmdline:
            out.append(int(entry.name))
    return sorted(out)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes in /proc")
def test_a_killed_worker_loses_and_repeats_nothing(tmp_path, run_dsc, one_thread, rng):
    from dsc.testing import pattern_store

    pattern_store(tmp_path / "data.h5")
    for name in ("ref", "out"):
        (tmp_path / f"{name}.toml").write_text(STUDY.format(output=name))
    procs = ["--executor", "processes", "--jobs", "2", "--no-report"]   # the reference: the same executor
    assert run_dsc("study", str(tmp_path / "ref.toml"), *procs).code == 0
    runs = sorted(p.name for p in (tmp_path / "ref").iterdir() if (p / "run.json").is_file())
    run, k = runs[int(rng.integers(len(runs)))], int(rng.integers(1, 4))
    cmd = dsc_cmd("study", "out.toml", *procs)
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        end = time.monotonic() + 120
        while metrics_lines(tmp_path / "out" / run) < k:
            assert proc.poll() is None, f"the study ended before the kill: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < end, f"no epoch {k} of {run} (seed {SEED})"
            time.sleep(0.02)
        workers = _workers(proc.pid)
        assert len(workers) == 2, workers
        os.kill(workers[int(rng.integers(2))], signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0 and "a worker process died" in err and "Traceback" not in err, err[-2000:]
    assert_nothing_corrupt(tmp_path)
    res = run_dsc("study", str(tmp_path / "out.toml"), *procs)
    assert res.code == 0, res.err
    assert_nothing_corrupt(tmp_path)
    same_runs(tmp_path / "ref", tmp_path / "out", runs)
