"""Tiny stores for training tests (dsc.testing.pattern_store): 3 classes of 16x16 images, colour and pattern."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsc.testing import pattern_store, synthetic_store
from dsc.threads import one_torch_thread


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, Path]:
    data = pattern_store(tmp_path / "data.h5", per_class=(6, 2, 2))
    return {"data": data, "synthetic": synthetic_store(tmp_path / "syn.h5", data, ood=False, per_image=1),
            "ood": synthetic_store(tmp_path / "ood.h5", data, ood=True, per_image=1)}
