"""The watchdog that opens untrusted stores in a forked child first (dsc/store/guard.py)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from dsc.errors import InputError, StoreError
from dsc.store import guard

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the guard forks (Linux only)")


@pytest.fixture
def target(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(guard.ENV, "1.5")
    monkeypatch.setattr(guard, "_checked", set())
    path = tmp_path / "file.h5"
    path.write_bytes(b"x")
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _hang(pid_file: Path):
    """Work that records its process id, then spins the way HDF5 does on a crafted heap."""
    def work(_path):
        pid_file.write_text(str(os.getpid()))
        while True:
            pass
    return work


def test_a_hanging_child_is_killed_and_reported(target, tmp_path):
    pid_file = tmp_path / "pid"
    hang = _hang(pid_file)
    start = time.monotonic()
    with pytest.raises(StoreError, match=r"did not finish reading its metadata within 1.5 s"):
        guard.check_in_child(target, hang)
    assert time.monotonic() - start < 10
    assert not _alive(int(pid_file.read_text()))


def test_a_crashing_child_is_reported(target):
    with pytest.raises(StoreError, match=r"crashes the HDF5 library \(SIGSEGV\)"):
        guard.check_in_child(target, lambda _p: os.kill(os.getpid(), signal.SIGSEGV))


def test_clean_errors_in_the_child_are_left_to_the_parent(target):
    def fail(_path):
        raise StoreError("the parent finds this itself")

    guard.check_in_child(target, fail)  # no error here: the parent reads the file and raises


def test_work_runs_in_another_process_once_per_file_version(target, tmp_path):
    log = tmp_path / "log"

    def record(_path):
        with log.open("a") as f:
            f.write(f"{os.getpid()}\n")

    guard.check_in_child(target, record)
    guard.check_in_child(target, record)
    pids = log.read_text().split()
    assert len(pids) == 1 and int(pids[0]) != os.getpid()
    time.sleep(0.01)
    target.write_bytes(b"changed")  # a new version of the file is checked again
    guard.check_in_child(target, record)
    assert len(log.read_text().split()) == 2


def test_interrupt_while_waiting_kills_the_child(target, tmp_path):
    pid_file = tmp_path / "pid"
    hang = _hang(pid_file)

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            guard.check_in_child(target, hang)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert not _alive(int(pid_file.read_text()))


def test_zero_turns_the_check_off(target, monkeypatch, tmp_path):
    monkeypatch.setenv(guard.ENV, "0")
    assert not guard.enabled()
    guard.check_in_child(target, lambda _p: (tmp_path / "ran").write_text("yes"))
    assert not (tmp_path / "ran").exists()


def test_a_bad_setting_is_an_input_error(target, monkeypatch):
    monkeypatch.setenv(guard.ENV, "soon")
    with pytest.raises(InputError, match="DSC_STORE_CHECK_TIMEOUT='soon' is not a number"):
        guard.check_in_child(target, lambda _p: None)
