"""Shared fixtures: every test runs offline, with its own settings environment and a shared tiny-model cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def dsc_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache directory for the whole session (tiny models are built once)."""
    return tmp_path_factory.mktemp("dsc-cache")


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
