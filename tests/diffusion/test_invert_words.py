"""What `dsc invert` prints (issue 12): what its rate counts, with plurals, and a swallowed Ctrl-C never
lets it commit TOKENS/."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from dsc.testing import square_store

ARGS = ["--steps", "2", "--resolution", "64", "--batch-size", "2", "--num-vectors", "2", "--examples-per-class", "1"]


def test_summary_counts_tokens_and_says_what_the_rate_counts(run_dsc, tmp_path: Path, tiny_sd_path: Path) -> None:
    data = square_store(tmp_path / "data.h5")
    res = run_dsc("invert", data, "--model", tiny_sd_path, "-o", tmp_path / "tok", "--classes", "gear", *ARGS)
    assert res.code == 0, res
    assert re.search(r"wrote \S*tok: 1 token \(2 steps\); learning [0-9.]+ optimizer steps/s, [0-9.]+ s in all",
                     res.out), res


class _SwallowsCtrlC:
    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)


@pytest.fixture
def forget_ctrl_c():
    from dsc import interrupts

    yield
    interrupts._INTERRUPTED.clear()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_swallowed_ctrl_c_never_commits_tokens(run_dsc, tmp_path: Path, tiny_sd_path: Path, monkeypatch,
                                                 forget_ctrl_c) -> None:
    import dsc.diffusion.inversion as I

    real, classes = I.train_class, []

    def train_class(components, job, *args, **kwargs):
        classes.append(job.name)
        _SwallowsCtrlC()  # its KeyboardInterrupt is printed and ignored; dsc.interrupts remembers it
        return real(components, job, *args, **kwargs)

    monkeypatch.setattr(I, "train_class", train_class)
    data = square_store(tmp_path / "data.h5")
    res = run_dsc("invert", data, "--model", tiny_sd_path, "-o", tmp_path / "tok", *ARGS)
    assert res.code == 130, res
    assert not (tmp_path / "tok").exists()
    assert not list(tmp_path.glob("tok.partial/*.safetensors"))  # the first class's token was not saved
    assert len(classes) == 1  # stopped within the first class's steps, not after learning both


def test_a_strength_without_denoising_says_1_step() -> None:
    from dsc.diffusion.generate import check_strength
    from dsc.errors import ConfigError

    with pytest.raises(ConfigError, match=r"strength 0\.5 with 1 step runs no denoising step"):
        check_strength(1, 0.5)
