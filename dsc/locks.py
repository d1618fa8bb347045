"""One writer per output: ``<output>.lock`` held by a live process (stale locks taken over), see docs/security.md."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from dsc.errors import InputError, OutputExistsError
from dsc.outputs import disk_full_error, is_disk_full

log = logging.getLogger(__name__)


#: A lock file on another host is stale when its holder has not refreshed it for this many seconds.
STALE_ENV = "DSC_LOCK_STALE_SECONDS"
DEFAULT_STALE_SECONDS = 600.0
#: An unreadable (half-written) lock file younger than this is taken as being created right now.
UNREADABLE_GRACE_SECONDS = 5.0


#: Lock files held by this process (``check_output`` inside one's own lock must not refuse).
_HELD: set[str] = set()


class OutputLockedError(OutputExistsError):
    """Another process is writing the same output (``--force`` does not override a live lock)."""


def _locked_error(output: Path, lock: Path, info: dict[str, Any] | None) -> OutputLockedError:
    holder = _describe(info) if info else "a process that is starting"
    return OutputLockedError(f"{output} is being written by another dsc process ({holder})",
                             hint=f"wait for it to finish or stop it; if it is gone, delete {lock}")


def check_not_locked(path: Path) -> None:
    """Raise ``OutputLockedError`` if another live process holds ``<path>.lock`` (takes nothing)."""
    lock = OutputLock(path)
    if os.path.abspath(lock.path) in _HELD:
        return
    seen = lock._read()
    if seen is not None and lock._stale_reason(seen[1], seen[2]) is None:
        raise _locked_error(lock.output, lock.path, seen[1])


def lock_path(path: Path) -> Path:
    """The lock file of an output file or directory: ``<output>.lock`` next to it."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


def _stale_seconds() -> float:
    raw = os.environ.get(STALE_ENV)
    try:
        return float(raw) if raw else DEFAULT_STALE_SECONDS
    except ValueError:
        return DEFAULT_STALE_SECONDS


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (Linux ``/proc``), to tell a reused pid from the holder."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    except OSError:
        return True
    return True


def _describe(info: dict[str, Any]) -> str:
    return (f"pid {info.get('pid')} on {info.get('host')}, `{info.get('command')}`, "
            f"started {info.get('started')}")


class OutputLock:
    """An exclusive claim on one output, held in ``<output>.lock`` (JSON: pid, host, command, start time).

    The file is created with ``O_CREAT | O_EXCL``, so of two processes exactly one gets it. A lock left by
    a crashed process is taken over (with a warning) when its pid is no longer running on this host, or,
    for a holder on another host (shared file system), when it has not been refreshed for
    ``DSC_LOCK_STALE_SECONDS`` (default 600; the holder refreshes it every ``stale/10`` seconds).
    """

    def __init__(self, path: Path) -> None:
        self.output = Path(path)
        self.path = lock_path(self.output)
        self.token = uuid.uuid4().hex
        self.held = False
        self._pid = os.getpid()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------ content
    def _content(self) -> bytes:
        from dsc.provenance import command_line, now

        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command_line()[:300],
                "started": now(), "pid_start": _process_start(os.getpid()), "token": self.token}
        return (json.dumps(info) + "\n").encode()

    def _read(self) -> tuple[bytes, dict[str, Any] | None, float] | None:
        """(raw bytes, parsed info or None, age in seconds); None when the file is gone."""
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read(64 * 1024)
                age = time.time() - os.fstat(fh.fileno()).st_mtime
        except FileNotFoundError:
            return None
        try:
            info = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            info = None
        return raw, info if isinstance(info, dict) else None, age

    def _stale_reason(self, info: dict[str, Any] | None, age: float) -> str | None:
        """Why the lock described by ``info`` is stale, or None while its holder may be alive."""
        if info is None:
            return f"unreadable lock file, {age:.0f} s old" if age > UNREADABLE_GRACE_SECONDS else None
        pid = info.get("pid")
        if info.get("host") == socket.gethostname() and isinstance(pid, int):
            if not _pid_alive(pid):
                return f"process {pid} is no longer running"
            start = info.get("pid_start")
            if start is not None and _process_start(pid) not in (None, start):
                return f"process {pid} is no longer running (its pid was reused)"
            return None
        limit = _stale_seconds()
        if age > limit:
            return f"not refreshed for {age:.0f} s (more than {STALE_ENV}={limit:.0f})"
        return None

    # ------------------------------------------------------------------------------------ acquire
    def acquire(self) -> OutputLock:
        """Take the lock, or raise ``OutputLockedError`` naming the process that holds it."""
        content = self._content()
        for _attempt in range(20):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._handle_existing()
                continue
            except OSError as exc:
                if is_disk_full(exc):
                    raise disk_full_error(self.path) from None
                parent = self.path.parent
                if not parent.is_dir():  # the same words as check_output, which often runs after the lock
                    raise InputError(f"output directory {parent} does not exist",
                                     hint=f"create it: mkdir -p {parent}") from None
                raise InputError(f"cannot create lock file {self.path}: {exc.strerror or exc}",
                                 hint="the output folder must be writable") from None
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(content)
                    fh.flush()
                    os.fsync(fh.fileno())
            except BaseException as exc:
                self.path.unlink(missing_ok=True)
                if is_disk_full(exc):
                    raise disk_full_error(self.path) from None
                raise
            self.held = True
            self._pid = os.getpid()
            _HELD.add(os.path.abspath(self.path))
            self._start_heartbeat()
            return self
        raise OutputLockedError(f"cannot take the lock {self.path} (it keeps changing)",
                                hint="another dsc process is starting on the same output; wait and retry")

    def _handle_existing(self) -> None:
        """Raise if the existing lock is live; take over (remove) a stale one."""
        seen = self._read()
        if seen is None:
            return  # released meanwhile: retry
        raw, info, age = seen
        if info is None and age <= UNREADABLE_GRACE_SECONDS:
            time.sleep(0.05)  # being written by its creator right now
            seen = self._read()
            if seen is None:
                return
            raw, info, age = seen
        reason = self._stale_reason(info, age)
        if reason is None:
            raise _locked_error(self.output, self.path, info)
        # Move the stale file aside under a unique name: of several processes only one succeeds.
        aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = aside.read_bytes() if aside.exists() else b""
        if moved != raw:  # someone replaced it between our read and the rename: put theirs back
            with suppress(OSError):
                os.link(aside, self.path)
            aside.unlink(missing_ok=True)
            return
        aside.unlink(missing_ok=True)
        log.warning("taking over the lock on %s left by %s: %s", self.output,
                    _describe(info) if info else "an unknown process", reason)

    # ---------------------------------------------------------------------------------- heartbeat
    def _start_heartbeat(self) -> None:
        interval = max(_stale_seconds() / 10.0, 0.5)
        self._stop.clear()

        def beat() -> None:
            while not self._stop.wait(interval):
                if self._owned():
                    with suppress(OSError):
                        os.utime(self.path)

        self._thread = threading.Thread(target=beat, name=f"dsc-lock-{self.output.name}", daemon=True)
        self._thread.start()

    def _owned(self) -> bool:
        seen = self._read()
        return bool(seen and seen[1] and seen[1].get("token") == self.token)

    # ------------------------------------------------------------------------------------ release
    def release(self) -> None:
        """Remove the lock file if it is still ours (idempotent)."""
        if not self.held:
            return
        self.held = False
        self._stop.set()
        _HELD.discard(os.path.abspath(self.path))
        if self._owned():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> OutputLock:
        return self.acquire() if not self.held else self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:  # a writer dropped without close(): do not leave the lock behind
        try:
            if self.held and os.getpid() == self._pid:
                self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


@contextmanager
def output_lock(path: Path) -> Iterator[OutputLock]:
    """Hold ``<path>.lock`` while writing ``path`` (a file or a directory such as RUN/ or TOKENS/).

    >>> with output_lock(output):          # doctest: +SKIP
    ...     ...  # check_output, write output.partial, commit

    Raises ``OutputLockedError`` (one line naming pid, host, command and start time of the holder) when
    another live process holds it. ``--force`` does not break a live lock.
    """
    lock = OutputLock(path).acquire()
    try:
        yield lock
    finally:
        lock.release()
