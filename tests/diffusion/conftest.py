"""Fixtures for the diffusion tests: the tiny model (built once per session) and small DATA.h5 files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsc.testing import load_tiny_sd, square_store
from dsc.threads import one_torch_thread


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_torch_thread():
        yield


@pytest.fixture
def components(tiny_sd_path: Path):
    """A freshly loaded tiny model (tests may install tokens into it)."""
    return load_tiny_sd(tiny_sd_path)


@pytest.fixture
def data_h5(tmp_path: Path) -> Path:
    return square_store(tmp_path / "data.h5")
