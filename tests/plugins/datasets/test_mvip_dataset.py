"""The ``mvip`` dataset plugin on a generated MVIP-layout tree."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from dsc_datasets.mvip import MvipDataset, write_fake_mvip
from PIL import Image

from dsc.errors import InputError


@pytest.fixture(scope="module")
def mvip_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_mvip(tmp_path_factory.mktemp("mvip") / "sets", ["gear", "spring", "washer"],
                           sets=(2, 1, 1), orientations=2, cameras=2, size=48)


def _ds(**opts) -> MvipDataset:
    return MvipDataset(MvipDataset.Options(**opts))


def test_classes_from_meta_json(mvip_root: Path):
    info = {c.name: c for c in _ds(root=mvip_root).classes()}
    assert list(info) == ["gear", "spring", "washer"]
    assert "CarComponent" in info["spring"].super_classes
    assert info["washer"].super_classes == ("Fastener",)
    assert "round" in info["gear"].tags and info["gear"].description


def test_records_splits_groups_and_masks(mvip_root: Path):
    ds = _ds(root=mvip_root)
    assert ds.has_masks()
    recs = list(ds.records(["gear", "washer"]))
    # per class: train 2 sets x 2 orientations x 2 cameras, valid 1 x 2 cameras, test 1 x 2 cameras
    assert Counter((r.label, r.split) for r in recs) == {
        ("gear", "train"): 8, ("gear", "val"): 2, ("gear", "test"): 2,
        ("washer", "train"): 8, ("washer", "val"): 2, ("washer", "test"): 2}
    groups = {r.group for r in recs if r.label == "gear"}
    assert groups == {"gear/train/0000", "gear/train/0001", "gear/val/0000", "gear/test/0000"}
    by_group: dict[str, set[str]] = {}
    for r in recs:
        by_group.setdefault(r.group, set()).add(r.split)
    assert all(len(s) == 1 for s in by_group.values())  # a group never spans splits
    first = recs[0]
    assert first.source == "gear/train_data/0000/orientation_0/cam_00/00_rgb.png"
    assert first.meta == {"set": "0000", "camera": "cam_00", "orientation": "orientation_0"}
    assert all(r.image.name.endswith("_rgb.png") for r in recs)  # depth/meta files ignored
    assert "orientation" not in next(r for r in recs if r.split == "val").meta
    for r in recs[:3]:
        mask = np.asarray(Image.open(r.mask))
        assert mask.shape == np.asarray(Image.open(r.image)).shape[:2]
        assert set(np.unique(mask)) <= {0, 255} and mask.max() == 255


def test_fake_tree_is_deterministic(tmp_path: Path, mvip_root: Path):
    again = write_fake_mvip(tmp_path / "again", ["gear", "spring", "washer"], sets=(2, 1, 1), size=48)
    a = mvip_root / "spring" / "valid_data" / "0000" / "cam_01" / "01_rgb.png"
    b = again / "spring" / "valid_data" / "0000" / "cam_01" / "01_rgb.png"
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_camera_filter(mvip_root: Path):
    recs = list(_ds(root=mvip_root, cameras="1").records(["spring"]))
    assert len(recs) == 6 and {r.meta["camera"] for r in recs} == {"cam_01"}


def test_missing_mask_and_missing_meta(tmp_path: Path):
    root = write_fake_mvip(tmp_path / "m", ["nut", "bolt"], sets=(1, 0, 1), orientations=1, cameras=1, size=32)
    (root / "nut" / "test_data" / "0000" / "cam_00" / "00_rgb_mask_gen.png").unlink()
    (root / "bolt" / "meta.json").unlink()
    ds = _ds(root=root)
    assert [c.name for c in ds.classes()] == ["bolt", "nut"] and ds.classes()[0].super_classes == ()
    recs = {r.split: r for r in ds.records(["nut"])}
    assert recs["test"].mask is None and recs["test"].meta["mask"] == "missing"
    assert recs["train"].mask is not None


def test_errors(tmp_path: Path, mvip_root: Path):
    with pytest.raises(InputError, match="does not exist"):
        _ds(root=tmp_path / "missing").classes()
    (tmp_path / "plain" / "a").mkdir(parents=True)
    with pytest.raises(InputError, match="no MVIP class folders"):
        _ds(root=tmp_path / "plain").classes()
    with pytest.raises(InputError, match="drop --masks"):
        _ds(root=mvip_root, masks=tmp_path)
    with pytest.raises(InputError, match="unknown class"):
        list(_ds(root=mvip_root).records(["gear", "sprocket"]))
    bad = tmp_path / "bad" / "x"
    bad.mkdir(parents=True)
    (bad / "meta.json").write_text("{broken")
    with pytest.raises(InputError, match="cannot read .*meta.json"):
        _ds(root=tmp_path / "bad").classes()
    (bad / "meta.json").write_text(json.dumps({"super_class": [3]}))
    with pytest.raises(InputError, match="list of strings"):
        _ds(root=tmp_path / "bad").classes()


def test_symlink_outside_root_rejected(tmp_path: Path):
    root = write_fake_mvip(tmp_path / "m", ["nut"], sets=(1, 0, 0), orientations=1, cameras=1, size=32)
    outside = tmp_path / "outside.png"
    Image.new("RGB", (4, 4)).save(outside)
    target = root / "nut" / "train_data" / "0000" / "orientation_0" / "cam_00" / "00_rgb.png"
    target.unlink()
    os.symlink(outside, target)
    with pytest.raises(InputError, match="outside the dataset root"):
        list(_ds(root=root).records(["nut"]))
