"""Terminal output: results on stdout, logs and progress on stderr (rich; honours NO_COLOR)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

T = TypeVar("T")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)  # errors stay on one line in logs and pipes


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(1, "image")`` -> ``"image"``, ``plural(3, "image")`` -> ``"images"`` (the word only)."""
    return word if n == 1 else many or word + "s"


def count(n: int, word: str, many: str | None = None) -> str:
    """``count(1, "epoch")`` -> ``"1 epoch"``, ``count(2, "epoch")`` -> ``"2 epochs"``."""
    return f"{n} {plural(n, word, many)}"


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


class RateColumn(ProgressColumn):
    """Items per second, with a unit."""

    def __init__(self, unit: str = "it") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", self.unit)
        return Text(f"{speed:,.1f} {unit}/s" if speed else f"-- {unit}/s", style="progress.data.speed")


def progress(unit: str = "it", transient: bool = False) -> Progress:
    """A progress bar with count, rate, elapsed time and ETA, on stderr."""
    return Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        RateColumn(unit), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=err, transient=transient,
    )


def track(items: Iterable[T], description: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Iterate with a progress bar."""
    with progress(unit) as bar:
        task = bar.add_task(description, total=total, status="")
        for item in items:
            yield item
            bar.advance(task)
