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


#: Diff-Mix's soft-label weights w = s ** 0.8 for its strengths s in {0.5, 0.7, 0.9}, and w = 0 (unmixed).
MIX_WEIGHTS = (0.0, 0.5 ** 0.8, 0.7 ** 0.8, 0.9 ** 0.8)


def add_mix_columns(path: Path, weights=MIX_WEIGHTS) -> Path:
    """Turn a synthetic store into a diff-mix one as the store contract has it: ``mix_weight`` (float32, the
    weight w of ``other_label`` j = source class + 1 mod 3, cycling through ``weights``) and ``labels`` the
    dominant class."""
    import h5py
    import numpy as np

    with h5py.File(path, "r+") as h5:
        s = h5["samples"]
        source = s["source_label"][()]
        w = np.resize(np.asarray(weights, dtype=np.float32), len(source))
        other = (source + 1) % 3
        s.create_dataset("mix_weight", data=w)
        s.create_dataset("other_label", data=other.astype(np.int64))
        s["labels"][...] = np.where(w > 0.5, other, source)
    return path


@pytest.fixture
def mixed(stores, tmp_path: Path) -> Path:
    """A diff-mix store from ``stores["data"]``: 2 images per real train image, a quarter of them unmixed."""
    return add_mix_columns(synthetic_store(tmp_path / "mix.h5", stores["data"], ood=False, per_image=2, seed=3))
