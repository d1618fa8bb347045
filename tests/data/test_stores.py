from __future__ import annotations

import numpy as np
import pytest

from dsc.data.stores import load_real, load_synthetic, open_inputs, resize_images
from dsc.errors import InputError, MismatchError
from dsc.store import Store
from dsc.testing import pattern_store, synthetic_store


def test_real_rows_exclude_other_splits_and_holdout(tmp_path):
    data = pattern_store(tmp_path / "d.h5", per_class=(4, 2, 1), holdout=3)
    store = Store(data)
    train = load_real(store, "train", 8)
    assert len(train) == 12 and train.images.shape == (12, 8, 8, 3) and not train.is_ood.any()
    assert (train.source_index == train.source_index.sort().values).all()
    test = load_real(store, "test", 16)
    assert len(test) == 3 and (test.labels >= 0).all()  # the 3 held-out rows are not test data


def test_ood_status_only_from_is_ood(tmp_path):
    data = pattern_store(tmp_path / "d.h5", per_class=(2, 1, 1))
    syn = synthetic_store(tmp_path / "s.h5", data, ood=False)
    ood = synthetic_store(tmp_path / "o.h5", data, ood=True)
    inputs = open_inputs(data, [syn], [ood])
    normal = load_synthetic(inputs.synthetic[0], 16, ood=False, n_classes=3)
    neg = load_synthetic(inputs.negatives[0], 16, ood=True, n_classes=3)
    assert not normal.is_ood.any() and (normal.labels >= 0).all()
    assert neg.is_ood.all() and (neg.labels == -1).all()
    assert sorted(set(neg.source_label.tolist())) == [0, 1, 2]  # source classes kept apart from labels
    with pytest.raises(InputError, match="no OOD rows"):
        load_synthetic(inputs.synthetic[0], 16, ood=True, n_classes=3)


def test_foreign_and_evaluation_only_stores_refused(tmp_path):
    data = pattern_store(tmp_path / "d.h5", per_class=(2, 1, 1))
    other = pattern_store(tmp_path / "other.h5", per_class=(2, 1, 1), seed=5)
    foreign = synthetic_store(tmp_path / "f.h5", other, ood=False)
    with pytest.raises(MismatchError, match="fingerprint"):
        open_inputs(data, [foreign])
    evaluation = synthetic_store(tmp_path / "e.h5", data, ood=True, evaluation_only=True)
    with pytest.raises(MismatchError, match="evaluation-only"):
        open_inputs(data, negatives=[evaluation])


def test_resize_once_at_load():
    imgs = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    imgs[:, :, 16:] = 200
    out = resize_images(imgs, 8)
    assert out.shape == (2, 8, 8, 3) and out.dtype.is_floating_point is False
    assert int(out[0, 0, 0, 0]) == 0 and int(out[0, 0, 7, 0]) == 200
