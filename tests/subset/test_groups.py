"""Images without a group: the summary and `dsc info` say "ungrouped: each image is its own group", `dsc subset`
warns once with how to give groups, and `--require-groups` refuses instead."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytest

from dsc.errors import InputError
from dsc.settings import SubsetSettings
from dsc.subset import build_subset
from tests.subset.conftest import make_tree

UNGROUPED = "ungrouped: each image is its own group"


def _folder(tmp_path: Path, manifest_rows: int | None = None) -> Path:
    """A folder dataset (3 classes x 10 images); a manifest grouping the first ``manifest_rows`` images
    in threes when given (None: no group information at all)."""
    root = make_tree(tmp_path / "crops", {"door": 10, "light": 10, "wheel": 10})
    if manifest_rows is not None:
        paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))[:manifest_rows]
        with (root / "manifest.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["path", "group"])
            w.writeheader()
            w.writerows({"path": p, "group": f"photo{i // 3}"} for i, p in enumerate(paths))
    return root


def _settings(root: Path, **kw) -> SubsetSettings:
    options = {"groups_csv": "manifest.csv"} if (root / "manifest.csv").exists() else {}
    return SubsetSettings(dataset="folder", root=root, resolution=16, workers=1, options=options, **kw)


def test_ungrouped_folder_is_said_in_the_summary_and_info_with_one_warning(tmp_path, run_dsc, caplog):
    root = _folder(tmp_path)
    with caplog.at_level(logging.WARNING):
        res = build_subset(_settings(root), tmp_path / "o.h5")
    assert res.summary["grouping"] == UNGROUPED
    assert res.summary["split_source"] == f"stratified by class; {UNGROUPED}"
    warnings = [r.getMessage() for r in caplog.records if "no group" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("All 30 images dsc splits have no group, so each is its own group")
    assert "groups_csv=manifest.csv" in warnings[0] and "metadata.json" in warnings[0]
    assert "--require-groups" in warnings[0]

    out = run_dsc("subset", "--dataset", "folder", "--root", root, "--resolution", "16", "--workers", "1",
                  "--output", tmp_path / "c.h5")
    assert out.code == 0, out
    assert f"splits: stratified by class; {UNGROUPED}" in " ".join(out.out.split())
    info = run_dsc("info", tmp_path / "c.h5")
    assert info.code == 0, info
    assert UNGROUPED in " ".join(info.out.split())


def test_require_groups_refuses_with_how_to_give_them(tmp_path, run_dsc):
    root = _folder(tmp_path)
    with pytest.raises(InputError, match="--require-groups: all 30 images dsc splits have no group") as exc:
        build_subset(_settings(root, require_groups=True), tmp_path / "o.h5")
    assert "groups_csv" in exc.value.hint
    res = run_dsc("subset", "--dataset", "folder", "--root", root, "--require-groups", "--output", tmp_path / "x.h5")
    assert res.code == 1 and res.err.startswith("Error: --require-groups") and "Traceback" not in res.err, res
    assert not (tmp_path / "x.h5").exists()


def test_grouped_and_partly_grouped(tmp_path, caplog):
    root = _folder(tmp_path / "all", manifest_rows=30)
    with caplog.at_level(logging.WARNING):
        res = build_subset(_settings(root, require_groups=True), tmp_path / "a.h5")
    assert res.summary["grouping"] == "grouped"
    assert res.summary["split_source"] == "stratified by class, by group"
    assert not any("no group" in r.getMessage() for r in caplog.records)

    root = _folder(tmp_path / "some", manifest_rows=12)
    res = build_subset(_settings(root), tmp_path / "b.h5")
    assert res.summary["grouping"] == "partly grouped: 18 of 30 images have no group (each is its own group)"
    with pytest.raises(InputError, match="18 of 30 images dsc splits have no group"):
        build_subset(_settings(root, require_groups=True), tmp_path / "c.h5")


def test_dataset_splits_need_no_groups_but_carving_val_does(tmp_path, testtree, caplog):
    """With the dataset's own train/val/test nothing is split by dsc: no warning, --require-groups passes.
    Carving val out of the dataset's train split is a dsc split: it is checked like any other."""
    full = make_tree(tmp_path / "full", {"x": 12, "y": 12}, group_size=1,
                     splits={"0": "train", "1": "val", "2": "test", "3": "train"})
    for p in full.rglob("*.png"):        # testtree: a name without "-" has no group
        p.rename(p.with_name(p.name.replace("-", "_")))
    with caplog.at_level(logging.WARNING):
        res = build_subset(SubsetSettings(dataset="testtree", root=full, resolution=16, workers=1,
                                          require_groups=True, options={"own_splits": True}), tmp_path / "f.h5")
    assert res.summary["split_source"] == "dataset" and res.summary["grouping"] == UNGROUPED
    assert not any("no group" in r.getMessage() for r in caplog.records)
    carve = make_tree(tmp_path / "carve", {"x": 12, "y": 12}, group_size=2,
                      splits={"0": "train", "1": "train", "2": "test", "3": "train"})
    res = build_subset(SubsetSettings(dataset="testtree", root=carve, resolution=16, workers=1,
                                      require_groups=True, options={"own_splits": True}), tmp_path / "g.h5")
    assert res.summary["split_source"] == "dataset (val carved from train, by group)"
