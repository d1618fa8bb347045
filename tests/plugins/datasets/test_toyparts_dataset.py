"""The ``toyparts`` demo dataset: catalogue, determinism, masks, speed and that colour is no shortcut."""

from __future__ import annotations

import logging
import time
from collections import Counter

import numpy as np
import pytest
from dsc_datasets.toyparts import CLASS_NAMES, ToyPartsDataset

from dsc.errors import InputError


def _ds(**opts) -> ToyPartsDataset:
    return ToyPartsDataset(ToyPartsDataset.Options(**opts))


def test_catalogue():
    classes = _ds().classes()
    names = [c.name for c in classes]
    assert len(names) >= 12 and len(set(names)) == len(names)
    assert tuple(names) == CLASS_NAMES
    supers = Counter(s for c in classes for s in c.super_classes)
    assert supers["Fastener"] >= 3 and supers["PowerTransmission"] >= 3 and supers["CarComponent"] >= 4
    assert all(c.tags and c.description and c.super_classes for c in classes)
    assert [c.name for c in _ds(num_classes=4).classes()] == names[:4]


def test_records_counts_groups_and_arrays():
    ds = _ds(num_classes=3, objects_per_class=2, views_per_object=3, image_size=40)
    assert ds.has_masks()
    recs = list(ds.records(["bolt", "gear"]))
    assert [r.label for r in recs] == ["gear"] * 6 + ["bolt"] * 6  # catalogue order, not request order
    assert Counter(r.group for r in recs) == {"gear/obj000": 3, "gear/obj001": 3, "bolt/obj000": 3,
                                              "bolt/obj001": 3}
    assert len({r.source for r in recs}) == 12 and all(r.split is None for r in recs)
    for r in recs:
        assert r.image.shape == (40, 40, 3) and r.image.dtype == np.uint8
        assert r.mask.shape == (40, 40) and r.mask.dtype == np.uint8
        assert set(np.unique(r.mask)) <= {0, 255}
        assert 0.02 < (r.mask > 0).mean() < 0.8  # an object is visible and not the whole frame
        assert {"object", "view", "background", "colour", "texture"} <= set(r.meta)


def test_deterministic_by_seed_and_independent_of_selection():
    a = list(_ds(seed=3, objects_per_class=2, views_per_object=2, image_size=48).records(["spring", "nut"]))
    b = list(_ds(seed=3, objects_per_class=2, views_per_object=2, image_size=48).records(["nut"]))
    c = list(_ds(seed=4, objects_per_class=2, views_per_object=2, image_size=48).records(["nut"]))
    nut_a = [r for r in a if r.label == "nut"]
    assert all(np.array_equal(x.image, y.image) and np.array_equal(x.mask, y.mask) for x, y in zip(nut_a, b, strict=True))
    assert not any(np.array_equal(x.image, y.image) for x, y in zip(b, c, strict=True))
    # the views of one object differ from each other
    assert not np.array_equal(b[0].image, b[1].image)


def test_colour_alone_does_not_identify_the_class():
    """Nearest class-mean on the mean object colour must stay far from perfect (shape is what matters)."""
    recs = list(_ds(objects_per_class=4, views_per_object=2, image_size=48).records(list(CLASS_NAMES)))
    feats = np.array([r.image[r.mask > 0].mean(0) for r in recs])
    labels = np.array([CLASS_NAMES.index(r.label) for r in recs])
    means = np.array([feats[labels == k].mean(0) for k in range(len(CLASS_NAMES))])
    pred = np.argmin(((feats[:, None] - means[None]) ** 2).sum(-1), 1)
    assert (pred == labels).mean() < 0.5


def test_fast_enough():
    start = time.perf_counter()
    n = sum(1 for _ in _ds(objects_per_class=2, views_per_object=5).records(list(CLASS_NAMES)))
    elapsed = time.perf_counter() - start
    assert n == 160 and elapsed < 8.0, f"{n} images took {elapsed:.1f} s"


def test_bad_input(caplog: pytest.LogCaptureFixture, tmp_path):
    with pytest.raises(InputError, match="unknown toyparts class"):
        list(_ds(num_classes=2).records(["gear", "bolt"]))
    with pytest.raises(ValueError):
        _ds(num_classes=99)
    with caplog.at_level(logging.WARNING):
        _ds(root=tmp_path)
    assert "ignored" in caplog.text
