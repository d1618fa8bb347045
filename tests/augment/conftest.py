"""Tiny inputs for augment tests (from dsc.testing): a DATA.h5 with masks (3 classes, train/val) and tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsc.testing import MASKED_CLASSES, masked_store, write_tokens
from dsc.threads import one_torch_thread


@pytest.fixture(scope="session")
def data_h5(tmp_path_factory) -> Path:
    return masked_store(tmp_path_factory.mktemp("data") / "data.h5")


@pytest.fixture(scope="session")
def tokens_dir(tmp_path_factory, tiny_sd) -> Path:
    return write_tokens(tmp_path_factory.mktemp("tokens") / "TOKENS", tiny_sd, MASKED_CLASSES)


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    with one_torch_thread():
        yield
