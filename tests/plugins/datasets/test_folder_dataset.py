"""The ``folder`` dataset plugin: discovery, masks, metadata, manifests, splits and bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from dsc_datasets.folder import FolderDataset
from PIL import Image

from dsc.errors import InputError


def _img(path: Path, size: tuple[int, int] = (8, 6), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 128).save(path)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    _img(root / "bolt" / "train_1.jpg")
    _img(root / "bolt" / "sub" / "valid_2.PNG")
    _img(root / "bolt" / "test_3.webp")
    _img(root / "nut" / "train_a.png")
    (root / "nut" / "notes.txt").write_text("not an image")
    _img(root / "nut" / ".hidden.png")
    (root / "empty").mkdir()
    (root / ".cache").mkdir()
    return root


def _ds(**opts) -> FolderDataset:
    return FolderDataset(FolderDataset.Options(**opts))


def test_classes_and_records(tree: Path):
    ds = _ds(root=tree)
    assert [c.name for c in ds.classes()] == ["bolt", "empty", "nut"]
    assert not ds.has_masks()
    recs = list(ds.records(["nut", "bolt", "empty"]))
    assert [r.source for r in recs] == ["bolt/sub/valid_2.PNG", "bolt/test_3.webp", "bolt/train_1.jpg",
                                        "nut/train_a.png"]
    assert [r.label for r in recs] == ["bolt", "bolt", "bolt", "nut"]
    assert all(r.split is None and r.group is None and r.mask is None for r in recs)
    assert recs[0].image == tree.resolve() / "bolt" / "sub" / "valid_2.PNG"
    assert list(ds.records(["empty"])) == []
    assert [r.source for r in ds.records(["bolt"])] == [r.source for r in recs[:3]]  # stable


def test_split_from_prefix(tree: Path):
    recs = list(_ds(root=tree, split_from_prefix=True).records(["bolt", "nut"]))
    assert [r.split for r in recs] == ["val", "test", "train", "train"]
    _img(tree / "nut" / "photo.jpg")
    with pytest.raises(InputError, match="no train_/valid_/test_ prefix"):
        list(_ds(root=tree, split_from_prefix=True).records(["nut"]))


def test_masks_tree(tree: Path, tmp_path: Path):
    masks = tmp_path / "masks"
    _img(masks / "bolt" / "train_1.png", mode="L")
    _img(masks / "bolt" / "train_1.jpg", mode="L")  # png is preferred
    _img(masks / "bolt" / "sub" / "valid_2.bmp", mode="L")
    ds = _ds(root=tree, masks=masks)
    assert ds.has_masks()
    recs = {r.source: r for r in ds.records(["bolt", "nut"])}
    assert recs["bolt/train_1.jpg"].mask == masks.resolve() / "bolt" / "train_1.png"
    assert recs["bolt/sub/valid_2.PNG"].mask == masks.resolve() / "bolt" / "sub" / "valid_2.bmp"
    assert recs["bolt/test_3.webp"].mask is None and recs["bolt/test_3.webp"].meta["mask"] == "missing"
    assert recs["nut/train_a.png"].mask is None  # no mask folder for the class at all


def test_masks_inside_root_are_not_a_class(tree: Path):
    _img(tree / "masks" / "bolt" / "train_1.png", mode="L")
    ds = _ds(root=tree, masks=tree / "masks")
    assert "masks" not in [c.name for c in ds.classes()]


def test_metadata_json(tree: Path):
    (tree / "metadata.json").write_text(json.dumps({
        "classes": {"bolt": {"super_classes": ["Fastener", "Metal"], "tags": "threaded;hex",
                             "description": "a bolt"},
                    "nut": {"super_class": "Fastener"}, "ghost": {}},
        "groups": {"bolt/train_1.jpg": "car1", "bolt/test_3.webp": "car1"},
    }))
    ds = _ds(root=tree)
    info = {c.name: c for c in ds.classes()}
    assert info["bolt"].super_classes == ("Fastener", "Metal")
    assert info["bolt"].tags == ("threaded", "hex") and info["bolt"].description == "a bolt"
    assert info["nut"].super_classes == ("Fastener",) and info["empty"].super_classes == ()
    groups = {r.source: r.group for r in ds.records(["bolt"])}
    assert groups == {"bolt/train_1.jpg": "car1", "bolt/test_3.webp": "car1", "bolt/sub/valid_2.PNG": None}


def test_metadata_csv_and_option_path(tree: Path, tmp_path: Path):
    (tree / "metadata.csv").write_text("class,super_classes,tags,description\nnut,Fastener;Hex,small,a nut\n")
    assert _ds(root=tree).classes()[2].super_classes == ("Fastener", "Hex")
    other = tmp_path / "elsewhere.json"
    other.write_text(json.dumps({"classes": {"nut": {"super_classes": ["Other"]}}}))
    assert _ds(root=tree, metadata=other).classes()[2].super_classes == ("Other",)
    with pytest.raises(InputError, match="does not exist"):
        _ds(root=tree, metadata=tmp_path / "nope.json").classes()


def test_groups_and_splits_from_manifest(tree: Path):
    (tree / "manifest.csv").write_text(
        "path,source_image,original_split\n"
        "bolt/train_1.jpg,car7.jpg,train\nbolt/sub/valid_2.PNG,car7.jpg,valid\n"
        "bolt/test_3.webp,car9.jpg,test\nnut/train_a.png,car9.jpg,train\n")
    ds = _ds(root=tree, groups_csv="manifest.csv", group_column="source_image", split_column="original_split")
    recs = {r.source: (r.group, r.split) for r in ds.records(["bolt", "nut"])}
    assert recs["bolt/sub/valid_2.PNG"] == ("car7.jpg", "val")
    assert recs["nut/train_a.png"] == ("car9.jpg", "train")
    with pytest.raises(InputError, match="no column 'group'"):
        list(_ds(root=tree, groups_csv="manifest.csv").records(["bolt"]))
    with pytest.raises(InputError, match="choose one source of splits"):
        _ds(root=tree, groups_csv="manifest.csv", split_column="original_split", split_from_prefix=True).classes()


@pytest.mark.parametrize("bad", ["../outside.jpg", "/etc/passwd", "bolt/../../x.jpg", "C:/x.jpg"])
def test_metadata_paths_must_stay_inside_root(tree: Path, bad: str):
    (tree / "metadata.json").write_text(json.dumps({"groups": {bad: "g"}}))
    with pytest.raises(InputError, match="relative|escapes"):
        _ds(root=tree).classes()
    (tree / "metadata.json").unlink()
    (tree / "m.csv").write_text(f"path,group\n{bad},g\n")
    with pytest.raises(InputError, match="relative|escapes"):
        _ds(root=tree, groups_csv="m.csv").classes()


def test_symlink_pointing_outside_root_is_rejected(tree: Path, tmp_path: Path):
    outside = _img(tmp_path / "secret" / "x.png")
    os.symlink(outside, tree / "nut" / "link.png")
    with pytest.raises(InputError, match="points outside the dataset root") as exc:
        list(_ds(root=tree).records(["nut"]))
    assert "allow_outside_links" in (exc.value.hint or "")
    recs = list(_ds(root=tree, allow_outside_links=True).records(["nut"]))
    assert [r.source for r in recs] == ["nut/link.png", "nut/train_a.png"]


def test_symlinked_root_is_fine(tree: Path, tmp_path: Path):
    link = tmp_path / "link-to-data"
    os.symlink(tree, link)
    assert len(list(_ds(root=link).records(["bolt"]))) == 3


def test_error_cases(tmp_path: Path, tree: Path):
    with pytest.raises(InputError, match="needs a root") as exc:
        _ds().classes()
    assert "--root" in (exc.value.hint or "")
    with pytest.raises(InputError, match="does not exist"):
        _ds(root=tmp_path / "missing").classes()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        _ds(root=tmp_path / "file.txt").classes()
    (tmp_path / "bare").mkdir()
    with pytest.raises(InputError, match="no class folders"):
        _ds(root=tmp_path / "bare").classes()
    with pytest.raises(InputError, match="unknown class"):
        list(_ds(root=tree).records(["bolt", "washer"]))
    with pytest.raises(InputError, match="mask directory"):
        list(_ds(root=tree, masks=tmp_path / "nomasks").records(["bolt"]))
    (tree / "metadata.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot be read"):
        _ds(root=tree).classes()
    (tree / "metadata.json").write_text(json.dumps({"classes": {"bolt": {"super_classes": [1]}}}))
    with pytest.raises(InputError, match="list of strings"):
        _ds(root=tree).classes()
