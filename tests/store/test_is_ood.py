"""One rule for OOD rows, ``Store.is_ood``: the ``is_ood`` column (docs/store-format.md), never the settings' mode.

Before it, training (dsc/data/stores.py) read the column, all False when absent, while the evaluation suite
(dsc/evaluate/suite.py) fell back to ``settings.mode == "ood"``: a synthetic store without the column but with
that mode was "no OOD rows" to ``--negatives`` and "all OOD rows" to ``dsc probe --ood``.
"""

from __future__ import annotations

import numpy as np
import pytest

from dsc.data.stores import load_synthetic
from dsc.errors import InputError
from dsc.evaluate.suite import in_distribution_indices, ood_indices
from dsc.store import Store, StoreWriter


def _synthetic(path, *, mode: str, is_ood: list[bool] | None) -> Store:
    n = 4 if is_ood is None else len(is_ood)
    with StoreWriter(path, kind="synthetic", attrs={"settings": {"mode": mode}}) as w:
        w.set_classes(["a", "b"])
        w.create_column("images", (8, 8, 3), np.uint8)
        for name in ("labels", "source_index", "source_label"):
            w.create_column(name)
        cols = {"images": np.arange(n * 192, dtype=np.int64).reshape(n, 8, 8, 3).astype(np.uint8),
                "labels": np.arange(n) % 2, "source_index": np.arange(n), "source_label": np.arange(n) % 2}
        if is_ood is not None:
            w.create_column("is_ood")
            cols["is_ood"] = np.array(is_ood)
        w.append(**cols)
        w.finalize()
    return Store(path)


def test_a_store_the_old_rules_disagreed_on_has_no_ood_rows_for_every_reader(tmp_path):
    store = _synthetic(tmp_path / "s.h5", mode="ood", is_ood=None)  # an "ood" mode, no is_ood column
    assert not store.is_ood.any()
    assert ood_indices(store).tolist() == []  # the suite called all 4 rows OOD
    with pytest.raises(InputError, match="no OOD rows"):
        load_synthetic(store, 8, ood=True, n_classes=2)
    assert len(load_synthetic(store, 8, ood=False, n_classes=2)) == 4


def test_the_column_decides_row_by_row_whatever_the_mode(tmp_path):
    store = _synthetic(tmp_path / "m.h5", mode="normal", is_ood=[False, True, False, True])
    assert store.is_ood.tolist() == [False, True, False, True]
    assert ood_indices(store).tolist() == [1, 3]
    assert load_synthetic(store, 8, ood=True, n_classes=2).source_index.tolist() == [1, 3]
    assert load_synthetic(store, 8, ood=False, n_classes=2).source_index.tolist() == [0, 2]
    assert in_distribution_indices(store, "train").tolist() == [0, 2]  # no split column: every row is train


def test_stores_without_the_column_have_no_ood_rows(tmp_path):
    with StoreWriter(tmp_path / "d.h5", kind="data") as w:
        w.set_classes(["a"])
        w.create_column("images", (8, 8, 3), np.uint8)
        w.create_row_columns()
        w.append(images=np.zeros((2, 8, 8, 3), np.uint8), labels=np.array([0, 0]), split=["train", "test"],
                 group=["g", "h"], source=["x", "y"], meta=["{}", "{}"], holdout=np.zeros(2, bool),
                 holdout_label=np.array([-1, -1]))
        w.finalize()
    data = Store(tmp_path / "d.h5", kind="data")
    assert data.is_ood.tolist() == [False, False] and in_distribution_indices(data, "test").tolist() == [1]
