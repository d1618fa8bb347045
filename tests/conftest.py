"""Shared fixtures: every test runs offline, with its own settings environment and a shared tiny-model cache.

The tiny diffusion model has one home (``dsc.testing``) and two fixtures here: ``tiny_sd_path`` (its folder,
built before any test process starts) and ``tiny_sd`` (loaded once per session by name, ``"tiny"``; tests
that install tokens load a fresh copy with ``dsc.testing.load_tiny_sd``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from dsc.threads import one_torch_thread


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as in a terminal: a shell starts background jobs (``pytest ... &``, nohup) with SIGINT ignored,
    which dsc respects on purpose (dsc/interrupts.py) and the subprocesses of the Ctrl-C tests inherit, so
    those tests would see no interrupt at all. The session restores Python's default handler."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def dsc_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache directory for the whole session (tiny models are built once)."""
    return tmp_path_factory.mktemp("dsc-cache")


@pytest.fixture(scope="session")
def tiny_sd_path(dsc_cache: Path) -> Path:
    """The tiny diffusion model's folder, built once per session (so launched processes do not race)."""
    from dsc.testing import tiny_sd_path as build

    return build(dsc_cache)


@pytest.fixture(scope="session")
def tiny_sd(dsc_cache: Path):
    """The tiny diffusion model loaded by name (``"tiny"``), shared by the session: install nothing into it."""
    os.environ["DSC_CACHE_DIR"] = str(dsc_cache)
    from dsc.testing import load_tiny_sd

    return load_tiny_sd(device="cpu")


@pytest.fixture
def one_thread():
    """One torch thread for the test (tiny models on a shared machine)."""
    with one_torch_thread():
        yield


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dsc_cache: Path) -> None:
    for key in list(os.environ):
        if key.startswith("DSC_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DSC_CACHE_DIR", str(dsc_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    from dsc.cli.common import State

    State.config = None
    State.debug = False


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


@pytest.fixture
def run_dsc(capsys: pytest.CaptureFixture[str]):
    """Run the real `dsc` entry point in-process: ``res = run_dsc("info", "x.h5")``."""
    from dsc.cli.main import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
