"""The column specs of dsc/store/schema.py: writers create columns from them, readers check them."""

from __future__ import annotations

import numpy as np
import pytest

from dsc.errors import StoreError
from dsc.store import Store, StoreWriter
from dsc.store.schema import COLUMNS, KIND_COLUMNS, KINDS, REJECTIONS, row_columns

ROW = {"int": 1, "bool": True, "float": 0.5, "str": "x"}


@pytest.mark.parametrize("kind", KINDS)
def test_row_columns_are_created_with_the_schema_dtypes_and_read_back(tmp_path, kind):
    path = tmp_path / f"{kind}.h5"
    with StoreWriter(path, kind=kind) as w:
        w.create_row_columns()
        names = [c.name for c in row_columns(kind)]
        assert sorted(w.samples) == sorted(["digest", *names])
        for name in names:
            want = np.dtype(COLUMNS[name].dtype) if COLUMNS[name].dtype is not str else np.dtype(object)
            assert w.samples[name].dtype == want, name
        w.append(digest=np.array([b"0" * 16], dtype="S16"),
                 **{c.name: np.array([ROW[c.family]], dtype=object if c.family == "str" else None)
                    for c in row_columns(kind)})
        w.finalize()
    store = Store(path, kind=kind)
    assert len(store) == 1 and set(store.columns) == {"digest", *names}


def test_every_kind_lists_only_standard_columns():
    for kind in KINDS:
        assert set(KIND_COLUMNS[kind]) <= set(COLUMNS) and KIND_COLUMNS[kind][0] == "digest"


def test_a_standard_column_of_another_kind_is_refused(tmp_path):
    with StoreWriter(tmp_path / "d.h5", kind="data") as w:
        with pytest.raises(StoreError, match="/samples/is_ood is not a column of data stores"):
            w.create_column("is_ood", (), bool)
        with pytest.raises(StoreError, match="needs a dtype"):
            w.create_column("my_extra")
        w.create_column("my_extra", (), np.int64)  # columns outside the schema stay possible
    with pytest.raises(StoreError, match="unknown store kind 'images'"):
        StoreWriter(tmp_path / "x.h5", kind="images")
    assert not (tmp_path / "x.h5.partial").exists()


def test_filter_score_is_checked_like_the_other_float_columns(tmp_path):
    path = tmp_path / "s.h5"
    with StoreWriter(path, kind="synthetic") as w:
        w.create_column("images", (4, 4, 3), np.uint8)
        w.create_column("filter_score", (), str)
        w.append(images=np.zeros((2, 4, 4, 3), np.uint8), filter_score=["a", "b"])
        w.finalize()
    with pytest.raises(StoreError, match="filter_score has shape .* expected one of floats per row"):
        Store(path)


def test_groups_beside_samples_are_written_and_read_through_the_store(tmp_path):
    path = tmp_path / "r.h5"
    with StoreWriter(path, kind="synthetic") as w:
        w.create_column("images", (4, 4, 3), np.uint8)
        w.append(images=np.zeros((1, 4, 4, 3), np.uint8))
        w.add_group(REJECTIONS, {"seed": np.array([7, 8]), "score": np.array([0.1, 0.2], np.float32)}, count=2)
        with pytest.raises(StoreError, match="different lengths"):
            w.add_group(REJECTIONS, {"seed": np.array([7]), "score": np.array([0.1, 0.2])})
        with pytest.raises(StoreError, match="add_group"):
            w.add_group("samples", {})
        w.finalize()
    store = Store(path)
    got = store.records(REJECTIONS)
    assert got["seed"].tolist() == [7, 8] and got["score"].dtype == np.float32
    assert store.records("nothing") == {}
    with pytest.raises(StoreError, match="records"):
        store.records("samples")


def test_the_schema_pins_the_dtypes_stores_have_always_had():
    """Changing one of these changes the file format: that needs a new SCHEMA_VERSION and a docs entry."""
    want = {"data": "labels:int64 split:str group:str source:str meta:str holdout:bool holdout_label:int64",
            "synthetic": "labels:int64 is_ood:bool source_label:int64 source_index:int64 variant:int32 "
                         "other_label:int64 mix_weight:float32 split:str strategy:str prompt:str strength:float32 "
                         "guidance:float32 steps:int32 scheduler:str seed:int64 base_seed:int64 ood_strategy:str",
            "embeddings": "labels:int64 split:str set:str row:int64"}
    for kind, spec in want.items():
        got = " ".join(f"{c.name}:{'str' if c.dtype is str else np.dtype(c.dtype).name}" for c in row_columns(kind))
        assert got == spec, kind
    assert (COLUMNS["filter_score"].dtype, COLUMNS["features"].dtype, COLUMNS["digest"].dtype) == \
        (np.float32, np.float32, "S16")
