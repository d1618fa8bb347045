"""Store.row_classes: the class a synthetic row is shown and assessed under (samples grid, quality)."""

from __future__ import annotations

import h5py
import numpy as np

from dsc.store import open_store
from dsc.testing import augmented_like, report_stores


def test_a_mixed_image_counts_under_its_label_and_an_ood_image_under_its_source(tmp_path):
    data, _ = report_stores(tmp_path)
    normal = augmented_like(data, tmp_path / "mix.h5")
    with h5py.File(normal, "r+") as h5:   # the first row: a Diff-Mix image of class i labelled j
        labels = h5["samples/labels"][...]
        src = h5["samples/source_label"][...]
        j = (int(src[0]) + 1) % 3
        labels[0] = j
        h5["samples/labels"][...] = labels
    store = open_store(normal)
    assert store.row_classes[0] == j != store.column("source_label")[0]   # old code: grouped under class i
    assert (store.row_classes[1:] == store.labels[1:]).all()
    ood = open_store(augmented_like(data, tmp_path / "ood.h5", mode="ood"))
    assert (ood.labels == -1).all() and (ood.row_classes == ood.column("source_label")).all()
    assert np.all(ood.row_classes >= 0)
