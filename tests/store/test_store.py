from __future__ import annotations

import h5py
import numpy as np
import pytest

from dsc.errors import OutputExistsError, StoreError
from dsc.store import SCHEMA_VERSION, Store, StoreWriter


def _write(path, n=5, force=False, resume=False, finalize=True):
    rng = np.random.default_rng(0)
    w = StoreWriter(path, kind="data", attrs={"settings": {"a": 1}}, force=force, resume=resume)
    w.set_classes(["a", "b"])
    w.create_column("images", (8, 8, 3), np.uint8)
    w.create_column("labels", (), np.int64)
    w.create_column("split", (), str)
    w.append(images=rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8), labels=np.arange(n) % 2,
             split=["train"] * n)
    if finalize:
        w.finalize()
    return w


def test_roundtrip_and_fingerprint(tmp_path):
    _write(tmp_path / "a.h5")
    _write(tmp_path / "b.h5")
    a, b = Store(tmp_path / "a.h5"), Store(tmp_path / "b.h5")
    assert len(a) == 5 and a.classes == ["a", "b"] and a.image_shape == (8, 8, 3)
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 16
    assert a.attrs["settings"] == {"a": 1}
    imgs = a.images([3, 0, 3])
    np.testing.assert_array_equal(imgs[0], a.images([3])[0])
    np.testing.assert_array_equal(imgs[1], a.load_images()[0])
    assert list(a.indices("train")) == [0, 1, 2, 3, 4]


def test_refuses_overwrite_and_leaves_no_partial_on_error(tmp_path):
    _write(tmp_path / "a.h5")
    with pytest.raises(OutputExistsError):
        _write(tmp_path / "a.h5")
    _write(tmp_path / "a.h5", force=True)
    with pytest.raises(RuntimeError), StoreWriter(tmp_path / "c.h5", kind="data"):
        raise RuntimeError("boom")
    assert not (tmp_path / "c.h5").exists() and not (tmp_path / "c.h5.partial").exists()


def test_resume_appends_to_partial(tmp_path):
    w = _write(tmp_path / "r.h5", finalize=False, resume=True)
    w.close()
    assert not (tmp_path / "r.h5").exists()
    w2 = StoreWriter(tmp_path / "r.h5", kind="data", resume=True)
    assert w2.resumed and len(w2) == 5
    w2.finalize()
    assert len(Store(tmp_path / "r.h5")) == 5


def test_rejects_foreign_and_newer_files(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as h5:
        h5["a"] = 1
    with pytest.raises(StoreError, match="not a dsc store"):
        Store(tmp_path / "x.h5")
    _write(tmp_path / "n.h5")
    with h5py.File(tmp_path / "n.h5", "a") as h5:
        h5.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path / "n.h5")
    (tmp_path / "t.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 10)
    with pytest.raises(StoreError, match="not a readable HDF5"):
        Store(tmp_path / "t.h5")
