"""Output locks (one writer per output, stale locks taken over) and disk-full handling of dsc.outputs and
the store writer."""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from dsc.errors import ResourceError
from dsc.locks import OutputLock, OutputLockedError, lock_path, output_lock
from dsc.outputs import atomic_write_json, atomic_write_text, check_output, is_disk_full, partial_path
from dsc.store import Store, StoreWriter

HOLDER = textwrap.dedent("""
    import sys
    from dsc.locks import output_lock
    with output_lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()          # hold until the test closes our stdin
""")


@pytest.fixture
def holder():
    """Start a subprocess holding the lock of a path; yields a starter, stops it afterwards."""
    procs: list[subprocess.Popen] = []

    def start(path: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in procs:
        proc.stdin.close()
        proc.wait(timeout=30)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_store(path: Path, n: int = 4, *, force: bool = False, resume: bool = False,
                 finalize: bool = True, seed: int = 0) -> StoreWriter:
    rng = np.random.default_rng(seed)
    w = StoreWriter(path, kind="data", force=force, resume=resume)
    w.set_classes(["a", "b"])
    w.create_column("images", (8, 8, 3), np.uint8)
    w.create_column("labels", (), np.int64)
    w.append(images=rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8), labels=np.arange(n) % 2)
    if finalize:
        w.finalize()
    return w


# ----------------------------------------------------------------------------------------------- locks
def test_second_writer_is_refused_naming_the_first(tmp_path, holder):
    out = tmp_path / "DATA.h5"
    proc = holder(out)
    info = json.loads(lock_path(out).read_text())
    assert info["pid"] == proc.pid and info["host"] == socket.gethostname()
    assert {"command", "started"} <= set(info)
    with pytest.raises(OutputLockedError) as exc:
        StoreWriter(out, kind="data", force=True)  # --force does not break a live lock
    msg = str(exc.value)
    assert f"pid {proc.pid}" in msg and socket.gethostname() in msg and info["started"] in msg
    assert "\n" not in msg and not partial_path(out).exists() and not out.exists()
    proc.stdin.close()
    proc.wait(timeout=30)
    assert not lock_path(out).exists()  # released on exit
    _write_store(out)  # and now it can be written
    assert len(Store(out)) == 4 and not lock_path(out).exists()


def test_cli_refuses_a_locked_output_in_one_line(tmp_path, holder, run_dsc):
    out = tmp_path / "DATA.h5"
    proc = holder(out)
    res = run_dsc("subset", "--dataset", "toyparts", "--classes", "2", "--resolution", "16", "-o", out, "--force")
    assert res.code == 1, res
    lines = [ln for ln in res.err.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "being written by another dsc process" in lines[0], res.err
    assert f"pid {proc.pid}" in res.err and "Traceback" not in res.err
    assert not out.exists() and not partial_path(out).exists()


def test_check_output_refuses_a_directory_another_process_is_writing(tmp_path, holder):
    run = tmp_path / "RUN"
    run.mkdir()
    proc = holder(run)
    with pytest.raises(OutputLockedError, match=f"RUN is being written by another dsc process \\(pid {proc.pid} "):
        check_output(run, force=True)
    with pytest.raises(OutputLockedError):
        check_output(run, resume=True)
    proc.stdin.close()
    proc.wait(timeout=30)
    check_output(run, force=True)


def test_check_output_passes_inside_own_lock_and_ignores_stale_locks(tmp_path):
    out = tmp_path / "RUN"
    with output_lock(out):
        check_output(out)  # the holder itself checks its output
    lock_path(out).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "token": "x"}))
    check_output(out)  # stale: the next acquire takes it over
    assert lock_path(out).exists()


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
    out = tmp_path / "DATA.h5"
    pid = _dead_pid()
    lock_path(out).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "command": "dsc subset",
                                          "started": "2026-01-01T00:00:00+00:00", "token": "x"}))
    with caplog.at_level(logging.WARNING, logger="dsc.outputs"):
        _write_store(out)
    assert f"pid {pid}" in caplog.text and "no longer running" in caplog.text
    assert len(Store(out)) == 4 and not lock_path(out).exists()
    assert not list(tmp_path.glob("*.stale-*"))


def test_lock_from_a_reused_pid_is_stale(tmp_path):
    out = tmp_path / "RUN"
    lock_path(out).write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "command": "x",
                                          "started": "then", "pid_start": "1", "token": "x"}))
    if not Path(f"/proc/{os.getppid()}/stat").exists():
        pytest.skip("no /proc: pid reuse cannot be detected here")
    with output_lock(out):
        assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()


def test_lock_on_another_host_is_stale_only_after_the_documented_age(tmp_path, monkeypatch):
    out = tmp_path / "TOKENS"
    lock = lock_path(out)
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "command": "dsc invert", "started": "t"}))
    with pytest.raises(OutputLockedError, match="pid 1 on elsewhere, `dsc invert`"):
        OutputLock(out).acquire()
    monkeypatch.setenv("DSC_LOCK_STALE_SECONDS", "30")
    old = lock.stat().st_mtime - 60
    os.utime(lock, (old, old))
    with output_lock(out) as held:
        assert held.held and json.loads(lock.read_text())["host"] == socket.gethostname()
    assert not lock.exists()


def test_holder_refreshes_its_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("DSC_LOCK_STALE_SECONDS", "5")  # refresh every 0.5 s
    out = tmp_path / "x.h5"
    with output_lock(out):
        lock = lock_path(out)
        os.utime(lock, (1, 1))
        import time

        deadline = time.time() + 10
        while lock.stat().st_mtime < 2 and time.time() < deadline:
            time.sleep(0.1)
        assert lock.stat().st_mtime > 2


def test_half_written_lock_counts_as_live_while_young_and_stale_when_old(tmp_path):
    out = tmp_path / "x.h5"
    lock = lock_path(out)
    lock.write_bytes(b"")
    with pytest.raises(OutputLockedError, match="a process that is starting"):
        OutputLock(out).acquire()
    os.utime(lock, (1, 1))
    with output_lock(out):
        pass
    assert not lock.exists()


def test_same_process_cannot_open_two_writers_and_release_is_idempotent(tmp_path):
    out = tmp_path / "x.h5"
    w = _write_store(out, finalize=False)
    with pytest.raises(OutputLockedError, match=f"pid {os.getpid()}"):
        StoreWriter(out, kind="data", force=True)
    w.close()
    w.close()
    assert not lock_path(out).exists()


def test_release_does_not_remove_a_lock_taken_over_by_another_process(tmp_path):
    out = tmp_path / "x.h5"
    lock = OutputLock(out).acquire()
    lock_path(out).write_text(json.dumps({"pid": 1, "host": "elsewhere", "token": "theirs"}))
    lock.release()
    assert json.loads(lock_path(out).read_text())["token"] == "theirs"


def test_writer_error_before_finalize_releases_lock_and_removes_partial(tmp_path):
    out = tmp_path / "x.h5"
    with pytest.raises(RuntimeError), StoreWriter(out, kind="data"):
        raise RuntimeError("boom")
    assert not lock_path(out).exists() and not partial_path(out).exists()


# ------------------------------------------------------------------------------------------- disk full
def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_is_disk_full_recognises_errno_and_hdf5_text():
    assert is_disk_full(OSError(errno.ENOSPC, "x"))
    assert is_disk_full(OSError("Can't write data (file write failed: errno = 28, error message = "
                                "'No space left on device')"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("No space left"))


def test_atomic_write_disk_full_keeps_previous_content(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"v": 1})
    monkeypatch.setattr(os, "fsync", _enospc)
    with pytest.raises(ResourceError, match=f"disk full while writing {target}") as exc:
        atomic_write_text(target, "new")
    assert "free space and rerun with --resume" in str(exc.value)
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_writes_follow_the_umask_like_stores(tmp_path, umask):
    """Reports, figures, run.json, metrics and tokens (all written by atomic_write_*) get 0o666 & ~umask,
    the mode the stores get; tempfile.mkstemp made them 0600 whatever the umask."""
    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "run.json", {"v": 1})
        atomic_write_text(tmp_path / "report.md", "# dsc report\n")
        atomic_write_text(tmp_path / "report.md", "# again\n")   # replacing keeps the mode
        _write_store(tmp_path / "data.h5")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"run.json": 0o666 & ~umask, "report.md": 0o666 & ~umask, "data.h5": 0o666 & ~umask}


def test_store_disk_full_rolls_back_batch_keeps_resumable_partial(tmp_path, monkeypatch):
    out = tmp_path / "SYN.h5"
    reference = tmp_path / "ref.h5"
    rng = np.random.default_rng(3)
    images = rng.integers(0, 255, (6, 8, 8, 3), dtype=np.uint8)
    with StoreWriter(reference, kind="synthetic") as w:
        w.create_column("images", (8, 8, 3), np.uint8)
        w.create_column("labels", (), np.int64)
        w.append(images=images, labels=np.arange(6))
        w.finalize()

    w = StoreWriter(out, kind="synthetic", resume=True)
    w.create_column("images", (8, 8, 3), np.uint8)
    w.create_column("labels", (), np.int64)
    w.append(images=images[:3], labels=np.arange(3))
    real_setitem = h5py.Dataset.__setitem__

    def full(self, key, value):  # the labels write of the second batch fails, images already resized
        if self.name.endswith("labels"):
            raise OSError("Can't write data (file write failed: errno = 28, error message = "
                          "'No space left on device')")
        return real_setitem(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", full)
    with pytest.raises(ResourceError) as exc:
        w.append(images=images[3:], labels=np.arange(3, 6))
    assert str(exc.value) == f"disk full while writing {partial_path(out)} (free space and rerun with --resume)"
    monkeypatch.setattr(h5py.Dataset, "__setitem__", real_setitem)
    assert len(w) == 3 and all(ds.shape[0] == 3 for ds in w.samples.values())
    w.close()
    assert not out.exists() and not lock_path(out).exists()
    with h5py.File(partial_path(out), "r") as h5:  # still a readable HDF5 file with the first batch
        np.testing.assert_array_equal(h5["samples/images"][()], images[:3])
    w2 = StoreWriter(out, kind="synthetic", resume=True)
    assert w2.resumed and len(w2) == 3
    w2.append(images=images[3:], labels=np.arange(3, 6))
    w2.finalize()
    st, ref = Store(out), Store(reference)
    np.testing.assert_array_equal(st.load_images(), images)
    assert st.fingerprint == ref.fingerprint


def test_store_disk_full_on_finalize_keeps_the_old_output(tmp_path, monkeypatch):
    out = tmp_path / "DATA.h5"
    _write_store(out, seed=1)
    before = out.read_bytes()
    w = _write_store(out, force=True, finalize=False, seed=2)
    monkeypatch.setattr("dsc.store.writer.commit", _enospc)
    with pytest.raises(ResourceError, match="disk full"):
        w.finalize()
    w.close()
    assert out.read_bytes() == before and not lock_path(out).exists()


def test_cli_disk_full_is_one_line_and_old_output_untouched(tmp_path, monkeypatch, run_dsc):
    out = tmp_path / "DATA.h5"
    args = ("subset", "--dataset", "toyparts", "--classes", "2", "--resolution", "16", "-o", out)
    assert run_dsc(*args).code == 0
    before = out.read_bytes()
    monkeypatch.setattr("dsc.store.writer.StoreWriter._write_chunks", _enospc)
    res = run_dsc(*args, "--force")
    assert res.code == 1, res
    lines = [ln for ln in res.err.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and f"disk full while writing {partial_path(out)}" in lines[0], res.err
    assert "free space and rerun" in res.err and "Traceback" not in res.err
    assert out.read_bytes() == before
    assert not partial_path(out).exists() and not lock_path(out).exists()  # subset cannot resume: space freed
