"""`dsc info`: human table and JSON for stores with and without held-out classes and masks."""

from __future__ import annotations

import json

import numpy as np

from dsc.store import StoreWriter


def _store(path, holdout: bool = True, masks: bool = False):
    rng = np.random.default_rng(0)
    with StoreWriter(path, kind="data", attrs={"settings": {"resolution": 8}, "command": "dsc subset x",
                                               "plugin": {"name": "toy", "distribution": "d", "version": "1"},
                                               "timings": {"total": 1.5},
                                               "summary": {"skipped": {"total": 2, "by_reason": {"truncated": 2}}}}
                     ) as w:
        w.set_classes(["gear", "bolt"], **({"holdout_names": ["spring"]} if holdout else {}))
        w.create_column("images", (8, 8, 3), np.uint8)
        if masks:
            w.create_column("masks", (8, 8), np.uint8)
        for name, dtype in (("labels", np.int64), ("split", str), ("holdout", bool), ("holdout_label", np.int64)):
            w.create_column(name, (), dtype)
        labels = [0, 0, 1, 1, 0, 1, -1, -1]
        cols = dict(images=rng.integers(0, 255, (8, 8, 8, 3), dtype=np.uint8), labels=np.array(labels),
                    split=["train", "train", "train", "val", "test", "test", "test", "test"],
                    holdout=np.array(labels) < 0, holdout_label=np.where(np.array(labels) < 0, 0, -1))
        if masks:
            cols["masks"] = np.zeros((8, 8, 8), np.uint8)
        w.append(**cols)
        w.finalize()


def test_info_table(run_dsc, tmp_path):
    _store(tmp_path / "s.h5")
    res = run_dsc("info", tmp_path / "s.h5")
    assert res.code == 0, res
    out = res.out
    assert "8 samples, 2 classes + 1 held-out, images 8x8x3, masks no" in out
    rows = {ln.split("│")[2].strip(): [c.strip() for c in ln.split("│")[3:-1]]
            for ln in out.splitlines() if ln.count("│") >= 6}
    assert rows["gear"] == ["2", "0", "1", "3"] and rows["bolt"] == ["1", "1", "1", "3"]
    assert rows["spring"] == ["0", "0", "2", "2"] and rows["all"] == ["3", "1", "4", "8"]
    assert "held out" in out and "toy (d 1)" in out and "2 (2 truncated)" in out and "dsc subset x" in out


def test_info_json(run_dsc, tmp_path):
    _store(tmp_path / "s.h5", masks=True)
    res = run_dsc("info", tmp_path / "s.h5", "--json")
    assert res.code == 0, res
    data = json.loads(res.out)
    assert data["classes"] == ["gear", "bolt"] and data["holdout_classes"] == ["spring"]
    assert data["counts"] == {"train": {"gear": 2, "bolt": 1}, "val": {"bolt": 1},
                              "test": {"gear": 1, "bolt": 1, "spring": 2}}
    assert data["masks"] is True and data["image_shape"] == [8, 8, 3] and data["holdout"] == 2
    assert data["attrs"]["fingerprint"] and data["attrs"]["settings"] == {"resolution": 8}


def test_info_without_holdout_columns(run_dsc, tmp_path):
    _store(tmp_path / "s.h5", holdout=False)
    res = run_dsc("info", tmp_path / "s.h5", "--json")
    data = json.loads(res.out)
    assert data["holdout_classes"] == [] and data["counts"]["test"]["ood"] == 2


def test_info_errors(run_dsc, tmp_path):
    (tmp_path / "x.h5").write_bytes(b"nope")
    res = run_dsc("info", tmp_path / "x.h5")
    assert res.code == 1 and "not a readable HDF5 file" in res.err and "Traceback" not in res.err
    res = run_dsc("info", tmp_path)
    assert res.code == 1 and "is a directory" in res.err


def test_info_on_a_synthetic_store_with_its_own_summary(run_dsc, tmp_path):
    with StoreWriter(tmp_path / "aug.h5", kind="synthetic", attrs={"summary": {"gear": {"n": 2}}}) as w:
        w.set_classes(["gear"])
        w.create_column("images", (8, 8, 3), np.uint8)
        w.create_column("labels", (), np.int64)
        w.create_column("is_ood", (), bool)
        w.append(images=np.zeros((2, 8, 8, 3), np.uint8), labels=np.array([0, -1]), is_ood=np.array([False, True]))
        w.finalize()
    res = run_dsc("info", tmp_path / "aug.h5")
    assert res.code == 0, res
    assert "synthetic store, 2 samples" in res.out and "ood" in res.out and "skipped images" not in res.out
