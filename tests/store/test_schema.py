"""Store schema 3: written by this dsc; schema 1 stores (no seed-input columns) and schema 2 stores (no
``mix_weight``) are still read as they are."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from dsc.errors import StoreError
from dsc.store import SCHEMA_VERSION, Store, StoreWriter, row_digest


def _synthetic(path, *, base_seed=np.int64, ood_strategy=str):
    images = np.random.default_rng(0).integers(0, 255, (3, 8, 8, 3), dtype=np.uint8)
    with StoreWriter(path, kind="synthetic", attrs={"seed_derivation": {"inputs": ["base_seed"]}}) as w:
        w.set_classes(["a"])
        w.create_column("images", (8, 8, 3), np.uint8)
        w.create_column("base_seed", (), base_seed)
        w.create_column("ood_strategy", (), ood_strategy)
        w.append(images=images, base_seed=np.array([1, 1, 1]).astype(base_seed),
                 ood_strategy=["blend"] * 3 if ood_strategy is str else np.zeros(3, dtype=ood_strategy))
        w.finalize()
    return path, images


def test_version_3_is_written_with_a_digest_per_image_and_the_seed_inputs(tmp_path):
    assert SCHEMA_VERSION == 3
    path, images = _synthetic(tmp_path / "s.h5")
    s = Store(path)
    assert s.attrs["schema_version"] == 3 and s.attrs["seed_derivation"] == {"inputs": ["base_seed"]}
    assert s.column("digest").tolist() == [row_digest(im) for im in images]
    assert s.column("base_seed").tolist() == [1, 1, 1] and s.column("ood_strategy").tolist() == ["blend"] * 3


def test_schema_1_stores_are_read_unchanged(tmp_path):
    path, images = _synthetic(tmp_path / "s.h5")
    with h5py.File(path, "r+") as h5:
        h5.attrs["schema_version"] = 1
        del h5["samples/base_seed"], h5["samples/ood_strategy"]
        del h5.attrs["seed_derivation"]
    s = Store(path)
    assert s.attrs["schema_version"] == 1 and not s.has("base_seed")
    np.testing.assert_array_equal(s.images(slice(None)), images)
    assert len(set(s.column("digest").tolist())) == 3  # the digests the overlap check needs exist since schema 1


@pytest.mark.parametrize(("column", "kwargs"), [("base_seed", {"base_seed": np.float32}),
                                                ("ood_strategy", {"ood_strategy": np.int64})])
def test_the_new_columns_have_checked_types(tmp_path, column, kwargs):
    path, _ = _synthetic(tmp_path / "s.h5", **kwargs)
    with pytest.raises(StoreError, match=f"/samples/{column} has shape"):
        Store(path)


def test_schema_2_stores_without_mix_weight_read_as_hard_labels(tmp_path):
    path, _ = _synthetic(tmp_path / "s.h5")
    with h5py.File(path, "r+") as h5:
        h5.attrs["schema_version"] = 2
    s = Store(path)
    assert not s.has("mix_weight") and s.mix_weight.dtype == np.float32 and s.mix_weight.tolist() == [0.0] * 3


def test_mix_weight_is_a_checked_float_column(tmp_path):
    images = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    for dtype, ok in ((np.float32, True), (str, False)):
        path = tmp_path / f"{ok}.h5"
        with StoreWriter(path, kind="synthetic") as w:
            w.set_classes(["a", "b"])
            w.create_column("images", (8, 8, 3), np.uint8)
            w.create_column("mix_weight", (), dtype)
            w.append(images=images, mix_weight=np.array([0.0, 0.57]).astype(np.float32) if ok else ["0", "0.57"])
            w.finalize()
        if ok:
            np.testing.assert_array_equal(Store(path).mix_weight, np.float32([0.0, 0.57]))
        else:
            with pytest.raises(StoreError, match="/samples/mix_weight"):
                Store(path)


def test_the_fingerprint_covers_soft_targets_only_of_mixed_stores(tmp_path):
    images = np.random.default_rng(1).integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)

    def write(name, weight=None):
        with StoreWriter(tmp_path / name, kind="synthetic") as w:
            w.set_classes(["a", "b"])
            w.create_column("images", (8, 8, 3), np.uint8)
            w.create_column("other_label")
            cols = {"images": images, "other_label": np.array([1, 0])}
            if weight is not None:
                w.create_column("mix_weight")
                cols["mix_weight"] = np.float32(weight)
            w.append(**cols)
            w.finalize()
        return Store(tmp_path / name).fingerprint

    plain = write("plain.h5")
    assert write("zeros.h5", [0, 0]) == plain  # unmixed stores keep the fingerprint they had before schema 3
    assert len({plain, write("mixed.h5", [0.57, 0]), write("mixed2.h5", [0.75, 0])}) == 3
