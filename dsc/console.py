"""Terminal output: results on stdout, logs and progress on stderr (rich; honours NO_COLOR)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.status import Status
from rich.table import Column
from rich.text import Text

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # errors stay on one line in logs and pipes


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(1, "image")`` -> ``"image"``, ``plural(3, "image")`` -> ``"images"`` (the word only)."""
    return word if n == 1 else many or word + "s"


def count(n: int, word: str, many: str | None = None) -> str:
    """``count(1, "epoch")`` -> ``"1 epoch"``, ``count(2, "epoch")`` -> ``"2 epochs"``."""
    return f"{n} {plural(n, word, many)}"


#: Spinners (:func:`status`) are shown unless --quiet or --json turned them off for this command.
_SPINNERS = {"on": True}
_ACTIVE: list[Status] = []


def spinners(enabled: bool) -> None:
    """Turn :func:`status` spinners on or off for the rest of this command (off: --quiet, --json)."""
    _SPINNERS["on"] = enabled


@contextmanager
def status(message: str, console: Console | None = None) -> Iterator[None]:
    """A transient spinner on stderr naming what is being loaded (``"building timm:resnet18…"``) while the
    block runs. Only on a terminal: silent in pipes and logs, under --quiet and --json, and while a progress
    bar is shown; a status inside another one replaces its message for the time of the block."""
    console = console or err
    if _ACTIVE:
        outer = _ACTIVE[-1]
        before = outer.status
        outer.update(Text(message))
        try:
            yield
        finally:
            outer.update(before)
        return
    if (not _SPINNERS["on"] or not console.is_terminal or console.is_dumb_terminal or console._live_stack
            or os.environ.get("RANK", "0") != "0"):  # one process of a multi-process run shows it
        yield
        return
    with console.status(Text(message), spinner="dots") as shown:
        _ACTIVE.append(shown)
        try:
            yield
        finally:
            _ACTIVE.pop()


def setup_logging(level: str | int = "INFO", debug: bool = False) -> None:
    """Route ``logging`` to rich on stderr (idempotent)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_dsc", False):
            root.removeHandler(h)
    handler = RichHandler(console=err, show_path=debug, show_time=debug, rich_tracebacks=debug, markup=False)
    handler._dsc = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else level)
    for noisy in ("PIL", "h5py", "urllib3", "filelock", "httpx", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _one_line(justify: str = "left") -> Column:
    """A progress column that is never wrapped (a cut cell ends in '…')."""
    return Column(no_wrap=True, overflow="ellipsis", justify=justify)  # type: ignore[arg-type]


class RateColumn(ProgressColumn):
    """Items per second, with a unit, on one line ("250 img/s"; one decimal below 100)."""

    def __init__(self, unit: str = "it") -> None:
        super().__init__(table_column=_one_line("right"))
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", self.unit)
        figure = "--" if not speed else f"{speed:,.0f}" if speed >= 100 else f"{speed:.1f}"
        return Text(f"{figure} {unit}/s", style="progress.data.speed", no_wrap=True)


def _clock(seconds: float | None) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05``; ``None`` -> ``-:--``."""
    if seconds is None:
        return "-:--"
    s = int(max(0, seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class TimesColumn(ProgressColumn):
    """Elapsed time and the estimate of what is left in one short cell: ``0:12 eta 0:30``."""

    def __init__(self) -> None:
        super().__init__(table_column=_one_line())

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        left = "" if task.finished else f" eta {_clock(task.time_remaining)}"
        return Text(f"{_clock(elapsed)}{left}", style="progress.elapsed", no_wrap=True)


def progress(unit: str = "it", transient: bool = False) -> Progress:
    """A progress bar with count, rate, elapsed time and ETA, on stderr. Every cell but the bar stays on one
    line, and the bar takes what is left, so a bar fits an 80-column terminal ("img/s" is never broken)."""
    return Progress(
        TextColumn("[progress.description]{task.description}", table_column=_one_line()),
        BarColumn(bar_width=None), MofNCompleteColumn(table_column=_one_line("right")),
        RateColumn(unit), TimesColumn(),
        TextColumn("{task.fields[status]}", table_column=_one_line()),
        console=err, transient=transient,
    )
