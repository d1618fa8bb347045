"""Progress bars fit an 80-column terminal with "img/s" whole; spinners only on a terminal (issue 12)."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from rich.progress import ProgressSample

from dsc import console as C


def _render(width: int, *, total: int, done: int, status: str, description: str = "pretrain") -> list[str]:
    con = Console(width=width, record=True, force_terminal=True, file=io.StringIO(), color_system=None)
    bar = C.progress(unit="img")
    task = bar.add_task(description, total=total, status=status)
    bar.update(task, completed=done)
    bar.tasks[0]._progress.clear()
    bar.tasks[0]._progress.extend([ProgressSample(0.0, 0), ProgressSample(2.0, done)])  # a measured speed: done/2 images per second
    con.print(bar.get_renderable())
    return con.export_text().rstrip("\n").splitlines()


@pytest.mark.parametrize("total,done,status", [
    (123456, 2468, "epoch 10/100 loss 4.1234"),
    (123456, 123000, "epoch 100/100 loss 12.3456"),
    (98765432, 1234567, "round 250/300 loss 0.0001"),
    (40, 7, ""),
])
def test_the_bar_fits_80_columns_and_never_breaks_the_rate(total: int, done: int, status: str) -> None:
    lines = _render(80, total=total, done=done, status=status)
    assert len(lines) == 1, lines  # one line: nothing wrapped onto a second
    line = lines[0]
    assert len(line) <= 80
    assert " img/s" in line and f"{done}/{total}" in line
    if status:
        assert status in line


def test_the_rate_reads_whole_at_every_width() -> None:
    for width in range(40, 121, 4):
        lines = _render(width, total=123456, done=2468, status="epoch 10/100 loss 4.1234")
        assert len(lines) == 1 and len(lines[0]) <= width, (width, lines)  # narrower: cells cut with '…'
        if width >= 76:
            assert re.search(r"\d[\d,]* img/s", lines[0]), (width, lines)  # the figure and its unit together


def _status_output(monkeypatch: pytest.MonkeyPatch, con: Console, *, enabled: bool = True) -> str:
    monkeypatch.setattr(C, "err", con)
    C.spinners(enabled)
    try:
        with C.status("building timm:resnet18…"):
            con.print("inside")
    finally:
        C.spinners(True)
    return con.export_text()


def test_status_shows_its_message_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    con = Console(width=80, record=True, force_terminal=True, file=io.StringIO(), color_system=None)
    assert "building timm:resnet18…" in _status_output(monkeypatch, con)


def test_status_is_silent_in_a_pipe_and_when_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = Console(width=80, record=True, force_terminal=False, file=io.StringIO())
    assert _status_output(monkeypatch, pipe).strip() == "inside"
    tty = Console(width=80, record=True, force_terminal=True, file=io.StringIO(), color_system=None)
    assert _status_output(monkeypatch, tty, enabled=False).strip() == "inside"


def test_a_nested_status_names_the_inner_step_then_the_outer_again(monkeypatch: pytest.MonkeyPatch) -> None:
    con = Console(width=80, record=True, force_terminal=True, file=io.StringIO(), color_system=None)
    monkeypatch.setattr(C, "err", con)
    with C.status("importing torch…"):
        with C.status("reading data.h5…"):
            assert C._ACTIVE[-1].status.plain == "reading data.h5…"
        assert C._ACTIVE[-1].status.plain == "importing torch…"
    assert not C._ACTIVE


def test_only_the_main_process_of_a_multi_process_run_spins(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = Console(width=80, record=True, force_terminal=True, file=io.StringIO(), color_system=None)
    monkeypatch.setenv("RANK", "1")
    assert _status_output(monkeypatch, tty).strip() == "inside"
