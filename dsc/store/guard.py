"""A watchdog for opening untrusted HDF5 files.

The HDF5 C library can loop forever or crash on crafted metadata (for example a global-heap object of size
zero makes HDF5 2.0 spin while loading the heap that holds our JSON attributes). It holds the GIL while it
does, so no Python thread, signal handler or Ctrl-C can stop it. So before a store is first opened in a
process, a forked child opens it and reads all its metadata and small columns, and the parent waits for it
at most ``DSC_STORE_CHECK_TIMEOUT`` seconds (default 60; ``0`` turns the check off). A child that hangs is
killed, and a child that crashes is reported: either way the parent raises a one-line ``StoreError``
instead of hanging or dying. Each file version (device, inode, size, mtime) is checked once per process.

The check runs where ``os.fork`` is safe to use (Linux); elsewhere it is skipped.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from pathlib import Path

from dsc.errors import InputError, StoreError

ENV = "DSC_STORE_CHECK_TIMEOUT"
DEFAULT_TIMEOUT = 60.0

_checked: set[tuple[int, int, int, int]] = set()
_in_child = False


def timeout_seconds() -> float:
    """The configured limit in seconds (``0`` or less: no check)."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        return float(raw)
    except ValueError:
        raise InputError(f"{ENV}={raw!r} is not a number of seconds",
                         hint=f"set {ENV} to e.g. 60, or to 0 to turn the check off") from None


def enabled() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "fork") and not _in_child and timeout_seconds() > 0


def check_in_child(path: Path, work: Callable[[Path], object]) -> None:
    """Run ``work(path)`` in a forked child; raise ``StoreError`` if it hangs past the limit or crashes.

    ``work`` may raise: its errors are the parent's to find again (it reads the same file), only a hang
    or a crash of the child is reported here.
    """
    if not enabled():
        return
    stat = path.stat()
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key in _checked:
        return
    limit = timeout_seconds()
    read_end, write_end = os.pipe()
    with _hdf5_lock(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "fork() in a multi-threaded process"
        pid = os.fork()
    if pid == 0:
        _child(path, work, read_end, write_end)
    os.close(write_end)
    try:
        status = _wait(pid, read_end, limit)
    finally:
        os.close(read_end)
    if status is None:
        raise StoreError(f"{path} could not be opened: the HDF5 library did not finish reading its metadata "
                         f"within {limit:g} s, so the file is damaged or crafted to hang readers",
                         hint=f"recreate the store; on a very slow file system raise {ENV}")
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        raise StoreError(f"{path} could not be opened: reading its metadata crashes the HDF5 library ({name})",
                         hint="the file is damaged or crafted; recreate the store")
    _checked.add(key)


def _hdf5_lock() -> AbstractContextManager[object]:
    """h5py's global lock, held across ``fork`` so that no other thread is inside HDF5 at that moment."""
    try:
        from h5py._objects import phil
    except ImportError:  # a future h5py without it: fork without the lock
        return nullcontext()
    return phil


def _child(path: Path, work: Callable[[Path], object], read_end: int, write_end: int) -> None:
    """In the forked child: do the work, report through the pipe, and leave without any clean-up
    (``os._exit``: no atexit handlers, so the parent's open files and buffers are never flushed twice)."""
    global _in_child
    _in_child = True
    try:
        os.close(read_end)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        work(path)
    except BaseException:  # noqa: BLE001, S110 - a clean error is the parent's to find and raise
        pass
    finally:
        try:
            os.write(write_end, b"done")
        finally:
            os._exit(0)


def _wait(pid: int, read_end: int, limit: float) -> int | None:
    """The child's exit status, or ``None`` after killing it when it ran past ``limit`` seconds."""
    deadline = time.monotonic() + limit
    try:
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([read_end], [], [], left)
            if ready:  # "done" written, or the pipe closed because the child died
                os.read(read_end, 16)
                return os.waitpid(pid, 0)[1]
    except BaseException:  # Ctrl-C while waiting: never leave a spinning child behind
        _kill(pid)
        raise
    _kill(pid)
    return None


def _kill(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
