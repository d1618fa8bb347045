"""Directory outputs are locked: a second `dsc pretrain` on a RUN/ that a live process is writing is refused
with one line naming that process; a lock left by a killed process does not block --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsc.testing import clean_env, dsc_cmd, pattern_store

TRAIN = ["--backbone", "timm:test_resnet", "--image-size", "16", "--batch-size", "12"]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.05)


@pytest.mark.slow
def test_second_pretrain_on_same_run_is_refused(tmp_path, run_dsc):
    data = pattern_store(tmp_path / "data.h5")
    run = tmp_path / "RUN"
    first = subprocess.Popen(dsc_cmd("pretrain", str(data), "-o", str(run), *TRAIN, "--epochs", "60"),
                             cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        _wait_for(run / "metrics.jsonl", first)
        lock = json.loads((tmp_path / "RUN.lock").read_text())
        assert lock["pid"] == first.pid and "pretrain" in lock["command"]
        res = run_dsc("pretrain", str(data), "-o", str(run), *TRAIN, "--epochs", "1", "--force")
        assert res.code == 1
        line = res.err.strip()
        assert "\n" not in line and "being written by another dsc process" in line and f"pid {first.pid}" in line
        res = run_dsc("baseline", str(data), "-o", str(run), *TRAIN, "--epochs", "1", "--resume")
        assert res.code == 1 and f"pid {first.pid}" in res.err
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    # the holder is gone: its lock is stale and is taken over; the run resumes from its last epoch
    assert (tmp_path / "RUN.lock").exists()
    proc = subprocess.run(dsc_cmd("pretrain", str(data), "-o", str(run), *TRAIN, "--epochs", "60", "--resume"),
                          cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "taking over the lock" in proc.stderr or "taking over the lock" in proc.stdout
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    assert not (tmp_path / "RUN.lock").exists()


def test_probe_holds_a_lock(tmp_path, run_dsc, monkeypatch):
    """`dsc probe` is refused while another live process holds RUN/probe.lock, and releases its own."""
    data = pattern_store(tmp_path / "data.h5")
    run = tmp_path / "RUN"
    assert run_dsc("pretrain", str(data), "-o", str(run), *TRAIN, "--epochs", "1").code == 0
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from dsc.locks import OutputLock; "
                       "OutputLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)",
                       str(run / "probe")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = run_dsc("probe", str(run), "--epochs", "2", "--no-corruptions")
        assert res.code == 1 and f"pid {holder.pid}" in res.err and "\n" not in res.err.strip()
    finally:
        holder.kill()
        holder.wait()
    res = run_dsc("probe", str(run), "--epochs", "2", "--no-corruptions")
    assert res.code == 0, res.err
    assert not (run / "probe.lock").exists() and (run / "probe" / "metrics.json").is_file()
