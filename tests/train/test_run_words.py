"""What pretrain and baseline print (issue 12): counts with their plurals, rates that say what they count,
the bar's loss is the round's mean, spinners while loading, and a swallowed Ctrl-C never ends "complete"."""

from __future__ import annotations

import io
import json
import re
import signal
from pathlib import Path

import pytest
from rich.console import Console

ARGS = ["--backbone", "timm:test_resnet", "--image-size", "16", "--lr", "0.05"]


@pytest.mark.parametrize("command", ["pretrain", "baseline"])
def test_one_epoch_reads_1_epoch_and_the_rate_says_images(run_dsc, stores, tmp_path: Path, command: str) -> None:
    res = run_dsc(command, stores["data"], *ARGS, "--epochs", "1", "--batch-size", "8", "-o", tmp_path / "run")
    assert res.code == 0, res
    assert "1 epoch (3 steps, 18 images)" in res.out and "1 epochs" not in res.out + res.err, res
    assert re.search(r"; training [0-9.,]+ images/s, [0-9.]+ s in all", res.out), res
    again = run_dsc(command, stores["data"], *ARGS, "--epochs", "1", "--batch-size", "8", "-o", tmp_path / "run",
                    "--resume")
    assert again.code == 0 and "already complete (1 epoch," in again.out, again


def test_the_bar_ends_each_round_on_its_mean_loss(run_dsc, stores, tmp_path: Path, monkeypatch) -> None:
    import dsc.console

    screen = Console(width=80, record=True, force_terminal=True, file=io.StringIO(), color_system=None)
    monkeypatch.setattr(dsc.console, "err", screen)
    # 18 images in batches of 8: steps of 8, 8 and 2 images, so the last batch's loss is not the mean
    res = run_dsc("pretrain", stores["data"], *ARGS, "--epochs", "2", "--batch-size", "8", "-o", tmp_path / "run")
    assert res.code == 0, res
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    shown = re.findall(r"epoch (\d)/2 loss ([0-9.]+)", screen.export_text())
    last_shown = {int(epoch): loss for epoch, loss in shown}  # what the bar showed last in each round
    assert last_shown == {row["epoch"]: f"{row['loss']:.4f}" for row in rows}, (shown, rows)


def test_loading_names_what_it_loads(run_dsc, stores, tmp_path: Path, monkeypatch) -> None:
    import contextlib

    import dsc.console

    said: list[str] = []

    @contextlib.contextmanager
    def status(message: str, console=None):
        said.append(message)
        yield

    monkeypatch.setattr(dsc.console, "status", status)
    res = run_dsc("pretrain", stores["data"], *ARGS, "--epochs", "1", "--batch-size", "8", "-o", tmp_path / "run")
    assert res.code == 0, res
    assert said[:2] == ["checking backbone timm:test_resnet…", "importing torch…"], said
    assert "reading data.h5 at 16 px…" in said and "building timm:test_resnet at 16 px…" in said, said


@pytest.fixture
def forget_ctrl_c():
    """A Ctrl-C recorded by a test must not reach the tests after it (commit() would refuse)."""
    from dsc import interrupts

    yield
    interrupts._INTERRUPTED.clear()


class _SwallowsCtrlC:
    """A finaliser running when Ctrl-C arrives: Python prints "Exception ignored ... KeyboardInterrupt" and
    carries on, so only dsc.interrupts remembers it."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("command", ["pretrain", "baseline"])
def test_a_swallowed_ctrl_c_never_ends_complete(run_dsc, stores, tmp_path: Path, monkeypatch, command: str,
                                                forget_ctrl_c) -> None:
    from dsc.train import loop

    real, steps = loop._step, []

    def step(*args, **kwargs):
        steps.append(1)
        if len(steps) == 2:
            _SwallowsCtrlC()  # collected at once: its KeyboardInterrupt is printed and ignored
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "_step", step)
    res = run_dsc(command, stores["data"], *ARGS, "--epochs", "3", "--batch-size", "8", "-o", tmp_path / "run")
    assert res.code == 130, res
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "interrupted", info["status"]
    assert len(steps) == 2  # stopped at the next step, not after the remaining 7
    assert not (tmp_path / "run" / "metrics.json").exists()  # the baseline did not evaluate
