"""`dsc subset` on the built-in dataset plugins: toyparts, a generated MVIP tree and a folder tree."""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np

from dsc.store import Store
from tests.subset.conftest import make_tree


def _no_leaks_rows(groups, splits) -> bool:
    seen = defaultdict(set)
    for g, s in zip(groups, splits, strict=True):
        seen[g].add(s)
    return all(len(v) == 1 for v in seen.values())


def _no_leaks(st: Store) -> bool:
    return _no_leaks_rows(st.column("group"), st.split)


def test_toyparts_demo_line(run_dsc, tmp_path):
    args = ["subset", "--dataset", "toyparts", "--classes", "3", "--holdout-classes", "1", "--crop-to-object",
            "--mask-dilation", "2", "--resolution", "32", "--option", "objects_per_class=4", "--option", "views_per_object=3",
            "--option", "image_size=64", "--seed", "0"]
    res = run_dsc(*args, "--workers", "1", "--output", tmp_path / "a.h5")
    assert res.code == 0, res
    st = Store(tmp_path / "a.h5")
    assert len(st.classes) == 3 and len(st.holdout_classes) == 1 and len(st) == 4 * 12
    assert st.has_masks and st.image_shape == (32, 32, 3) and _no_leaks(st)
    assert st.attrs["plugin"]["name"] == "toyparts" and st.attrs["plugin_options"]["objects_per_class"] == 4
    # a deterministic generator + the same seed give the same store, serial or parallel
    assert run_dsc(*args, "--workers", "2", "--output", tmp_path / "b.h5").code == 0
    assert Store(tmp_path / "b.h5").fingerprint == st.fingerprint
    masks = st.read("masks", st.indices(holdout=None))
    assert (masks > 0).mean(axis=(1, 2)).min() > 0.15  # cropped tight around the object


def test_mvip_tree_uses_its_splits_groups_and_masks(run_dsc, tmp_path):
    from dsc_datasets.mvip import write_fake_mvip

    write_fake_mvip(tmp_path / "mvip", 4, size=64)
    res = run_dsc("subset", "--dataset", "mvip", "--root", tmp_path / "mvip", "--super-class", "Fastener",
                  "--crop-to-object", "--mask-dilation", "4", "--resolution", "32", "--workers", "1",
                  "--output", tmp_path / "m.h5")
    assert res.code == 0, res
    assert "splits: dataset" in res.out
    st = Store(tmp_path / "m.h5")
    assert st.classes == ["bolt", "washer"] and set(st.split) == {"train", "val", "test"}
    assert _no_leaks(st) and all("/val/" in g or "/train/" in g or "/test/" in g for g in st.column("group"))
    for g, s in zip(st.column("group"), st.split, strict=True):
        assert f"/{s}/" in g  # the dataset's own split, kept
    bad = run_dsc("subset", "--dataset", "mvip", "--root", tmp_path / "mvip", "--super-class", "Fasteners",
                  "--output", tmp_path / "x.h5")
    assert bad.code == 1 and "did you mean 'Fastener'" in bad.err


def test_folder_tree_with_masks_groups_and_a_corrupt_file(run_dsc, tmp_path):
    root, masks = tmp_path / "crops", tmp_path / "crops-masks"
    make_tree(root, {"door": 16, "light": 14, "wheel": 12}, masks=masks, group_size=1)
    # crops of one car photo share a group, given by a manifest column (like carparts-seg-crops)
    rows = []
    for i, path in enumerate(sorted(p for p in root.rglob("*.png"))):
        rows.append({"path": path.relative_to(root).as_posix(), "source_image": f"car{i % 9}"})
    with (root / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "source_image"])
        writer.writeheader()
        writer.writerows(rows)
    victim = sorted((root / "wheel").glob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:40])  # truncated
    res = run_dsc("subset", "--dataset", "folder", "--root", root, "--masks", masks, "--crop-to-object",
                  "--option", "groups_csv=manifest.csv", "--option", "group_column=source_image",
                  "--resolution", "24", "--workers", "2", "--seed", "2", "--output", tmp_path / "f.h5")
    assert res.code == 0, res
    assert "skipped 1 image (" in res.out and victim.name in res.out
    st = Store(tmp_path / "f.h5")
    assert len(st) == 41 and st.has_masks and _no_leaks(st)
    assert len(set(st.column("group"))) == 9
    # held-out classes share source photos with training classes: reported, never a leak within classes
    res = run_dsc("subset", "--dataset", "folder", "--root", root, "--option", "groups_csv=manifest.csv",
                  "--option", "group_column=source_image", "--holdout-classes", "1", "--resolution", "16",
                  "--workers", "1", "--output", tmp_path / "h.h5")
    assert res.code == 0, res
    held = Store(tmp_path / "h.h5")
    summary = held.attrs["summary"]
    assert summary["group_leaks"] == 0 and summary["holdout_shared_groups"] > 0
    trained = ~held.holdout
    assert _no_leaks_rows(held.column("group")[trained], held.split[trained])
    assert set(np.unique(st.read("masks", np.arange(len(st))))) <= {0, 255}
