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


def test_precompressed_rows_roundtrip_direct_and_fallback(tmp_path):
    import zlib

    from dsc.store import Precompressed, row_digest

    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8)
    for compression in ("gzip", None):  # None: no filter, the writer decompresses and writes normally
        path = tmp_path / f"p-{compression}.h5"
        w = StoreWriter(path, kind="data", compression=compression)
        w.set_classes(["a"])
        w.create_column("images", (8, 8, 3), np.uint8, chunk_rows=1)
        w.create_column("labels", (), np.int64)
        w.append(images=Precompressed(zlib.compress(im.tobytes(), 4) for im in imgs),
                 digest=np.array([row_digest(im) for im in imgs], dtype="S16"), labels=np.zeros(3, np.int64))
        w.finalize()
        np.testing.assert_array_equal(Store(path).load_images(), imgs)
    with pytest.raises(StoreError, match="explicit 'digest'"):
        StoreWriter(tmp_path / "q.h5", kind="data").append(images=Precompressed([b""]))


def test_holdout_rows_are_excluded_from_indices_by_default(tmp_path):
    w = StoreWriter(tmp_path / "h.h5", kind="data")
    w.set_classes(["a", "b"], holdout_names=["z"])
    w.create_column("images", (4, 4, 3), np.uint8)
    for name, dtype in (("labels", np.int64), ("split", str), ("holdout", bool), ("holdout_label", np.int64)):
        w.create_column(name, (), dtype)
    w.append(images=np.zeros((4, 4, 4, 3), np.uint8), labels=np.array([0, 1, -1, 1]),
             split=["train", "test", "test", "test"], holdout=np.array([False, False, True, False]),
             holdout_label=np.array([-1, -1, 0, -1]))
    fp_with = w.fingerprint()
    w.finalize()
    st = Store(tmp_path / "h.h5")
    assert st.holdout_classes == ["z"] and st.holdout.tolist() == [False, False, True, False]
    assert st.indices("test").tolist() == [1, 3]
    assert st.indices("test", holdout=True).tolist() == [2]
    assert st.indices("test", holdout=None).tolist() == [1, 2, 3]
    assert st.indices().tolist() == [0, 1, 3] and st.fingerprint == fp_with
    assert st.summary()["counts"]["test"] == {"b": 2, "z": 1}
    plain = tmp_path / "plain.h5"
    _write(plain)
    ps = Store(plain)
    assert not ps.holdout.any() and ps.holdout_classes == [] and len(ps.indices()) == len(ps)
