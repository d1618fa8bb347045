"""build_subset on a small generated tree: choices, splits, holdout, determinism and every bad input."""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from dsc.errors import ConfigError, InputError, OutputExistsError
from dsc.settings import SubsetSettings
from dsc.store import Store
from dsc.subset import build_subset

from .conftest import make_tree

COUNTS = {"a": 18, "b": 24, "c": 12, "d": 9}
META = {"a": {"super": ["Car"], "tags": ["metal"]}, "b": {"super": ["Car"]}, "c": {"super": ["Bike"]},
        "d": {"super": ["Car", "Bike"], "tags": ["metal"]}}


@pytest.fixture
def tree(tmp_path, testtree):
    make_tree(tmp_path / "d", COUNTS, masks=tmp_path / "m", group_size=3, meta=META)
    return tmp_path


def _settings(tree, **kw) -> SubsetSettings:
    base = {"dataset": "testtree", "root": tree / "d", "resolution": 24, "workers": 1}
    return SubsetSettings(**{**base, **kw})


def _groups_leak(store: Store) -> bool:
    seen = defaultdict(set)
    for g, s in zip(store.column("group"), store.split, strict=True):
        seen[g].add(s)
    return any(len(v) > 1 for v in seen.values())


def test_store_contents_masks_crop_and_provenance(tree):
    res = build_subset(_settings(tree, masks=tree / "m", crop_to_object=True, mask_dilation=2), tree / "o.h5")
    with Store(tree / "o.h5") as st:
        assert st.classes == ["a", "b", "c", "d"] and len(st) == sum(COUNTS.values()) == res.n
        assert st.image_shape == (24, 24, 3) and st.has_masks
        for col in ("images", "masks", "labels", "split", "group", "source", "meta", "holdout"):
            assert st.has(col), col
        assert set(st.split) == {"train", "val", "test"} and not _groups_leak(st)
        # rows are ordered train, val, test so that each split is one contiguous block
        order = [("train", "val", "test").index(s) for s in st.split]
        assert order == sorted(order)
        masks = st.read("masks", np.arange(len(st)))
        assert set(np.unique(masks)) <= {0, 255} and (masks > 0).mean() > 0.2  # cropped to the object
        attrs = st.attrs
        assert attrs["plugin"]["name"] == "testtree" and attrs["plugin_options"]["masks"].endswith("m")
        assert attrs["settings"]["crop_to_object"] is True and "command" in attrs and "versions" in attrs
        assert attrs["summary"]["skipped"]["total"] == 0 and attrs["timings"]["total"] > 0
        assert attrs["fingerprint"] == res.fingerprint
        assert st.column("meta")[0].startswith("{")


def test_same_seed_same_fingerprint_serial_or_parallel(tree):
    a = build_subset(_settings(tree, seed=3), tree / "a.h5")
    b = build_subset(_settings(tree, seed=3, workers=2), tree / "b.h5")
    c = build_subset(_settings(tree, seed=4, classes=2), tree / "c.h5")
    d = build_subset(_settings(tree, seed=5, classes=2), tree / "d.h5")
    assert a.fingerprint == b.fingerprint
    assert c.fingerprint != d.fingerprint or Store(tree / "c.h5").classes != Store(tree / "d.h5").classes


def test_groups_never_span_splits(tmp_path, testtree):
    make_tree(tmp_path / "d", {"x": 40, "y": 35, "z": 30}, group_size=4)
    build_subset(SubsetSettings(dataset="testtree", root=tmp_path / "d", resolution=16, workers=1, seed=1),
                 tmp_path / "o.h5")
    st = Store(tmp_path / "o.h5")
    assert not _groups_leak(st)
    for lab in range(3):
        assert {"train", "val", "test"} == set(st.split[st.labels == lab])


def test_dataset_splits_are_used_and_val_carved_from_train(tmp_path, testtree):
    make_tree(tmp_path / "d", {"x": 24, "y": 24}, group_size=2, splits={"0": "train", "1": "train",
                                                                        "2": "train", "3": "test"})
    res = build_subset(SubsetSettings(dataset="testtree", root=tmp_path / "d", resolution=16, workers=1,
                                      options={"own_splits": True}), tmp_path / "o.h5")
    st = Store(tmp_path / "o.h5")
    sources = st.column("source")
    assert all(st.split[i] == "test" for i, s in enumerate(sources) if "/test_" in s)
    assert all(st.split[i] in ("train", "val") for i, s in enumerate(sources) if "/train_" in s)
    assert (st.split == "val").sum() > 0 and not _groups_leak(st)
    assert res.summary["split_source"].startswith("dataset")


def test_holdout_classes(tree):
    res = build_subset(_settings(tree, classes=2, holdout_classes=1, seed=1), tree / "o.h5")
    st = Store(tree / "o.h5")
    assert len(st.classes) == 2 and len(st.holdout_classes) == 1
    assert not set(st.classes) & set(st.holdout_classes)
    held = st.holdout
    assert held.sum() == COUNTS[st.holdout_classes[0]] == res.summary["holdout"]
    assert (st.labels[held] == -1).all() and (st.split[held] == "test").all()
    assert (st.labels[~held] >= 0).all()
    test_idx = st.indices("test")
    assert not held[test_idx].any() and held[st.indices("test", holdout=True)].all()
    assert len(st.indices(holdout=None)) == len(st)
    counts = st.summary()["counts"]["test"]
    assert counts[st.holdout_classes[0]] == held.sum()
    # the same seed chooses the same training classes with or without held-out classes
    build_subset(_settings(tree, classes=2, seed=1), tree / "p.h5")
    assert Store(tree / "p.h5").classes == st.classes


def test_filters_class_names_and_caps(tree):
    build_subset(_settings(tree, super_class="Bike"), tree / "o.h5")
    assert Store(tree / "o.h5").classes == ["c", "d"]
    build_subset(_settings(tree, tag="metal", super_class="Car"), tree / "t.h5")
    assert Store(tree / "t.h5").classes == ["a", "d"]
    build_subset(_settings(tree, class_names=["d", "a"], max_per_class=5), tree / "n.h5")
    st = Store(tree / "n.h5")
    assert st.classes == ["d", "a"] and np.bincount(st.labels).tolist() == [5, 5]


def test_min_per_class_skips_with_warning_and_errors_when_nothing_remains(tree, caplog):
    with caplog.at_level(logging.WARNING):
        res = build_subset(_settings(tree, min_per_class=15), tree / "o.h5")
    assert Store(tree / "o.h5").classes == ["a", "b"]
    assert {c["name"] for c in res.summary["skipped_classes"]} == {"c", "d"}
    assert "skipped 2 classes" in caplog.text
    with pytest.raises(InputError, match="no class has at least 100"):
        build_subset(_settings(tree, min_per_class=100), tree / "x.h5")
    assert not (tree / "x.h5").exists()


def test_empty_class_folder_is_skipped(tree):
    (tree / "d" / "empty").mkdir()
    res = build_subset(_settings(tree), tree / "o.h5")
    assert "empty" not in Store(tree / "o.h5").classes
    assert res.summary["skipped_classes"] == [{"name": "empty", "images": 0, "reason": "fewer than 1 image"}]


@pytest.mark.parametrize("kw, error, match", [
    ({"super_class": "Boat"}, InputError, "available: Bike, Car"),
    ({"tag": "wood"}, InputError, "available: metal"),
    ({"classes": 5}, InputError, "only 4 of 4 classes"),
    ({"classes": 3, "holdout_classes": 2}, InputError, r"3 classes \+ 2 held-out"),
    ({"class_names": ["b", "aa"]}, InputError, "did you mean 'a'"),
    ({"class_names": ["a"], "classes": 1}, ConfigError, "exclude each other"),
    ({"class_names": ["c"], "super_class": "Car"}, InputError, "filter"),
    ({"crop_to_object": True}, InputError, "needs masks"),
    ({"options": {"colour": "red"}}, ConfigError, "its options are: root, masks, own_splits"),
])
def test_bad_choices(tree, kw, error, match):
    with pytest.raises(error, match=match):
        build_subset(_settings(tree, **kw), tree / "o.h5")
    assert not (tree / "o.h5").exists() and not (tree / "o.h5.partial").exists()


def test_missing_root_and_output_dir_and_existing_output(tree):
    with pytest.raises(InputError, match="dataset root .* does not exist"):
        build_subset(_settings(tree, root=tree / "nope"), tree / "o.h5")
    with pytest.raises(InputError, match="output directory"):
        build_subset(_settings(tree), tree / "no" / "o.h5")
    build_subset(_settings(tree, classes=1), tree / "o.h5")
    with pytest.raises(OutputExistsError):
        build_subset(_settings(tree), tree / "o.h5")
    build_subset(_settings(tree), tree / "o.h5", force=True)
    assert len(Store(tree / "o.h5").classes) == 4


def test_corrupt_truncated_and_zero_byte_images_are_skipped_and_listed(tree):
    a = tree / "d" / "a"
    files = sorted(a.glob("*.png"))
    files[0].write_bytes(b"")
    files[1].write_bytes(files[1].read_bytes()[:60])
    files[2].write_bytes(b"garbage" * 10)
    res = build_subset(_settings(tree, workers=2), tree / "o.h5")
    skipped = res.summary["skipped"]
    assert skipped["total"] == 3 and sum(skipped["by_reason"].values()) == 3
    assert {s["source"] for s in skipped["files"]} == {f"a/{f.name}" for f in files[:3]}
    assert res.summary["classes"][0]["skipped"] == 3 and res.n == sum(COUNTS.values()) - 3
    assert Store(tree / "o.h5").attrs["summary"]["skipped"]["total"] == 3


def test_all_images_unreadable_is_an_error(tmp_path, testtree):
    (tmp_path / "d" / "a").mkdir(parents=True)
    for i in range(3):
        (tmp_path / "d" / "a" / f"{i}.png").write_bytes(b"")
    with pytest.raises(InputError, match="none of the 3 chosen images could be read"):
        build_subset(SubsetSettings(dataset="testtree", root=tmp_path / "d", workers=1), tmp_path / "o.h5")
    assert not list(tmp_path.glob("o.h5*"))


def test_missing_masks_error_skip_or_full(tree):
    gone = sorted((tree / "m" / "b").glob("*.png"))[:2]
    for f in gone:
        f.unlink()
    with pytest.raises(InputError, match="2 of 63 images have no mask file"):
        build_subset(_settings(tree, masks=tree / "m", crop_to_object=True), tree / "o.h5")
    res = build_subset(_settings(tree, masks=tree / "m", crop_to_object=True, on_missing_mask="skip"),
                       tree / "s.h5")
    assert res.n == 61 and res.summary["skipped"]["by_reason"] == {"bad mask": 2}
    res = build_subset(_settings(tree, masks=tree / "m", crop_to_object=True, on_missing_mask="full"),
                       tree / "f.h5")
    assert res.n == 63


def test_mask_of_another_size_is_a_clear_error_by_default(tree):
    victim = sorted((tree / "m" / "c").glob("*.png"))[0]
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(victim)
    with pytest.raises(InputError, match="mask .* is 7x5, the image is 48x40"):
        build_subset(_settings(tree, masks=tree / "m"), tree / "o.h5")
    assert not list(tree.glob("o.h5*"))
    res = build_subset(_settings(tree, masks=tree / "m", on_missing_mask="skip"), tree / "s.h5")
    assert res.summary["skipped"]["total"] == 1


def test_interruption_leaves_no_partial_file(tree, monkeypatch):
    from dsc.subset import decode

    calls = {"n": 0}
    real = decode.process_many

    def interrupted(items, job):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(items, job)

    monkeypatch.setattr(decode, "process_many", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_subset(_settings(tree), tree / "o.h5")
    assert calls["n"] == 3 and not list(tree.glob("o.h5*"))


def test_class_names_on_a_higher_layer_override_classes(tree):
    s = _settings(tree, classes=3, class_names=["b"])
    res = build_subset(s, tree / "o.h5", sources={"subset.classes": "config file dsc.toml",
                                                  "subset.class_names": "command line"})
    assert [c["name"] for c in res.summary["classes"]] == ["b"]
    with pytest.raises(ConfigError, match="exclude each other"):
        build_subset(s, tree / "p.h5", sources={"subset.classes": "command line",
                                                "subset.class_names": "command line"})


def test_sigterm_is_handled_like_ctrl_c(tree, monkeypatch):
    import os
    import signal

    from dsc.subset import decode

    real = decode.process_many
    calls = {"n": 0}

    def terminated(items, job):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(items, job)

    monkeypatch.setattr(decode, "process_many", terminated)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        build_subset(_settings(tree), tree / "o.h5")
    assert not list(tree.glob("o.h5*")) and signal.getsignal(signal.SIGTERM) is before


def test_class_info_lists_training_then_holdout_classes(tree):
    build_subset(_settings(tree, classes=2, holdout_classes=1, seed=2), tree / "o.h5")
    st = Store(tree / "o.h5")
    info = st.attrs["class_info"]
    assert [c["name"] for c in info] == st.classes + st.holdout_classes
    assert [c["holdout"] for c in info] == [False, False, True]
    assert all(c["super_classes"] for c in info)
