"""Ctrl-C that cannot be lost: every SIGINT is remembered, not only raised.

Python turns SIGINT into ``KeyboardInterrupt`` in whatever code the main thread runs at that moment. When
that code is a finaliser (``__del__``, a weakref callback, a generator being collected), the interpreter
prints "Exception ignored ... KeyboardInterrupt" and carries on, so a command could finish and exit 0
after the user pressed Ctrl-C. :func:`sigint_remembered` installs a handler that records the interrupt
before raising it; :func:`check` raises it again where an output is about to become final
(``dsc.outputs.commit``) and the CLI exits 130 when one was recorded, even if the exception was swallowed.
While the block runs, a ``KeyboardInterrupt`` swallowed by a finaliser is also recorded without printing
"Exception ignored ... Traceback" (``sys.unraisablehook``): the user sees one "Interrupted" line.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_INTERRUPTED = threading.Event()


def interrupted() -> bool:
    """Whether Ctrl-C was pressed since :func:`sigint_remembered` was entered."""
    return _INTERRUPTED.is_set()


def check() -> None:
    """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed (even if its exception was swallowed)."""
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


def _on_sigint(signum: int, frame: Any) -> None:
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def _quiet_ctrl_c(previous: Any) -> Any:
    """An unraisable hook that records a swallowed KeyboardInterrupt silently and passes the rest on."""

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _INTERRUPTED.set()
            return
        previous(unraisable)

    return hook


@contextmanager
def sigint_remembered() -> Iterator[None]:
    """Remember every SIGINT while the block runs (main thread only; elsewhere a no-op)."""
    _INTERRUPTED.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:  # started with Ctrl-C ignored (nohup, a worker)
        try:
            yield
        finally:
            _INTERRUPTED.clear()
        return
    old = signal.signal(signal.SIGINT, _on_sigint)
    old_hook = sys.unraisablehook
    sys.unraisablehook = _quiet_ctrl_c(old_hook)
    try:
        yield
    finally:
        sys.unraisablehook = old_hook
        signal.signal(signal.SIGINT, old)
        _INTERRUPTED.clear()  # a Ctrl-C belongs to this block: library calls made after it must not inherit it
