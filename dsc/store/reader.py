"""Reading stores. ``Store`` validates on construction and opens the HDF5 file lazily, once per process,
so it can be handed to DataLoader workers (it pickles without its handle).

Stores are untrusted input (see docs/security.md). Opening one does a bounded amount of work, the checks of
``dsc.store.validate`` (root attributes, column dtypes and shapes, rows backed by data). Damaged files give a
``StoreError``, on open or on the first read of a damaged part, never another exception. Before a file is
first opened in a process, ``guard`` has a forked child read it, so HDF5 hangs and crashes on crafted files
become a ``StoreError`` too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from dsc.errors import InputError, MismatchError, StoreError
from dsc.store import guard
from dsc.store.schema import REJECTIONS, SPLITS
from dsc.store.validate import (
    DAMAGED_HINT,
    MAX_ROWS,
    check_classes,
    check_header,
    check_samples,
    check_storage,
    decode,
    read_attrs,
)


class Store:
    """A dsc store on disk (read-only)."""

    def __init__(self, path: Path | str, kind: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path} does not exist", hint="check the path")
        if self.path.is_dir():
            raise InputError(f"{self.path} is a directory, not a dsc store (.h5 file)")
        guard.check_in_child(self.path, read_everything_small)
        try:
            h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise StoreError(f"{self.path} is not a readable HDF5 file ({exc})",
                             hint="the file is truncated or of another format; recreate it") from None
        try:
            with h5:
                self._validate(h5, kind)
        except (StoreError, MismatchError):
            raise
        except (OSError, KeyError, TypeError, ValueError, RuntimeError, AttributeError, OverflowError) as exc:
            raise StoreError(f"{self.path} is damaged ({type(exc).__name__}: {exc})", hint=DAMAGED_HINT) from None
        self._h5: h5py.File | None = None
        self._pid: int | None = None

    def _validate(self, h5: h5py.File, kind: str | None) -> None:
        """Everything checked on open (bounded work: metadata only, no column data is read)."""
        self.attrs = read_attrs(self.path, h5)
        check_header(self.path, self.attrs)
        if kind is not None and self.kind != kind:
            raise MismatchError(f"{self.path} is {_a(self.kind)} store, expected {_a(kind)} store",
                                hint=self._kind_hint(kind))
        self._columns = check_samples(self.path, h5)
        self._has_classes = check_classes(self.path, h5)

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """HDF5 read errors (damaged chunks, truncated data) as a one-line ``StoreError``."""
        try:
            yield
        except (OSError, RuntimeError) as exc:
            raise StoreError(f"{self.path} is damaged: cannot read {what} ({exc})", hint=DAMAGED_HINT) from None

    # ------------------------------------------------------------------------------------- handles
    @property
    def h5(self) -> h5py.File:
        """The open file, opened on first use in each process."""
        if self._h5 is None or self._pid != os.getpid():
            with self._reading("the file"):
                self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5

    def close(self) -> None:
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h5"] = None
        state["_pid"] = None
        for key in [k for k in state if k.startswith("_cached_")]:
            state.pop(key)
        return state

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _kind_hint(self, wanted: str) -> str | None:
        """For a store of the wrong kind: the store to pass instead, where its provenance names one."""
        inputs = self.attrs.get("inputs")
        source = inputs.get("data_path") if isinstance(inputs, dict) else None
        if wanted == "data" and self.kind == "synthetic":
            made = f"it was made from {source}; pass that DATA.h5" if source else "pass the DATA.h5 it was made from"
            return f"{made}, and this store with --synthetic (or --negatives for an OOD store)"
        if wanted == "data":
            return "pass the DATA.h5 made by `dsc subset`" + (f" ({source})" if source else "")
        return None

    # -------------------------------------------------------------------------------------- content
    @property
    def kind(self) -> str:
        return self.attrs["kind"]

    @property
    def fingerprint(self) -> str:
        return self.attrs.get("fingerprint", "")

    @property
    def evaluation_only(self) -> bool:
        return bool(self.attrs.get("evaluation_only", False))

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def __len__(self) -> int:
        return self._columns["digest"][0][0] if "digest" in self._columns else 0

    @cached_property
    def classes(self) -> list[str]:
        if not self._has_classes:
            return []
        with self._reading("/classes/names"):
            names = self.h5["classes"]["names"][()]
        return [str(x) for x in decode(names, f"{self.path}: /classes/names")]

    def class_array(self, name: str) -> np.ndarray | None:
        grp = self.h5.get("classes")
        if not isinstance(grp, h5py.Group) or name not in grp:
            return None
        with self._reading(f"/classes/{name}"):
            values = grp[name][()]
        return decode(values, f"{self.path}: /classes/{name}")

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        shape = self._columns.get("images", (None,))[0]
        return tuple(shape[1:]) if shape else None

    @property
    def has_masks(self) -> bool:
        return "masks" in self._columns

    def has(self, column: str) -> bool:
        return column in self._columns

    def column(self, name: str) -> np.ndarray:
        """A whole column as an array (strings decoded to ``str``). Do not use for images."""
        if name not in self._columns:
            raise StoreError(f"{self.path} has no column {name!r}", hint=f"it has {', '.join(self.columns)}")
        with self._reading(f"/samples/{name}"):
            values = self.h5["samples"][name][()]
        return values if name == "digest" else decode(values, f"{self.path}: /samples/{name}")

    @cached_property
    def labels(self) -> np.ndarray:
        return self.column("labels").astype(np.int64)

    @cached_property
    def split(self) -> np.ndarray:
        return self.column("split") if "split" in self._columns else np.full(len(self), "train", dtype=object)

    @cached_property
    def holdout(self) -> np.ndarray:
        """Boolean mask of held-out-class rows (``/samples/holdout``; all False when the column is absent).

        Held-out rows belong to classes kept out of training (label -1, split "test"); they serve as
        far-OOD test data. ``indices`` leaves them out unless asked.
        """
        if "holdout" in self._columns:
            return self.column("holdout").astype(bool)
        return np.zeros(len(self), dtype=bool)

    @cached_property
    def is_ood(self) -> np.ndarray:
        """Boolean mask of OOD rows: the ``/samples/is_ood`` column, the one mark of an OOD row.

        ``dsc augment`` writes it in every synthetic store (true for ``--mode ood``). Without the column
        (data and embeddings stores) no row is OOD: the flag is never inferred from a label or from the
        ``mode`` in the settings. Held-out classes of a data store are ``holdout``, not OOD rows.
        """
        if "is_ood" in self._columns:
            return self.column("is_ood").astype(bool)
        return np.zeros(len(self), dtype=bool)

    @cached_property
    def mix_weight(self) -> np.ndarray:
        """float32 weight of ``other_label`` in each row's soft target (``/samples/mix_weight``, schema 3: Diff-Mix
        images; the soft target is ``(1 - w) * y[source_label] + w * y[other_label]``). All zeros without the
        column (older stores, data stores): every such row is a hard label."""
        if "mix_weight" in self._columns:
            return self.column("mix_weight").astype(np.float32)
        return np.zeros(len(self), dtype=np.float32)

    @cached_property
    def row_classes(self) -> np.ndarray:
        """The class each row is shown and assessed under: its label for in-distribution rows (a Diff-Mix
        image's dominant class), the class it was made from (``source_label``) for OOD rows (label -1)."""
        labels = self.labels.astype(np.int64)
        if not self.has("source_label"):
            return labels
        return np.where(self.is_ood, self.column("source_label").astype(np.int64), labels)

    @cached_property
    def holdout_classes(self) -> list[str]:
        """Names of the held-out classes (``/classes/holdout_names``), in the order of ``holdout_label``."""
        values = self.class_array("holdout_names") if self._has_classes else None
        return [] if values is None else [str(x) for x in values]

    def indices(self, split: str | None = None, *, holdout: bool | None = False) -> np.ndarray:
        """Row indices in store order, optionally of one split.

        ``holdout=False`` (default) leaves out held-out-class rows, ``True`` gives only them, ``None``
        gives both.
        """
        keep = np.ones(len(self), dtype=bool) if split is None else (self.split == split)
        if holdout is not None and "holdout" in self._columns:
            keep &= self.holdout if holdout else ~self.holdout
        return np.flatnonzero(keep)

    def read(self, name: str, indices: np.ndarray | list[int] | slice) -> np.ndarray:
        """Rows of a column. Indices may be unsorted or repeated; reads are done in sorted order."""
        with self._reading(f"/samples/{name}"):
            return self._read(name, indices)

    def _read(self, name: str, indices: np.ndarray | list[int] | slice) -> np.ndarray:
        ds = self.h5["samples"][name]
        if isinstance(indices, slice):
            return ds[indices]
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size == 0:
            return np.empty((0, *ds.shape[1:]), dtype=ds.dtype)
        order = np.argsort(idx, kind="stable")
        uniq, inverse = np.unique(idx[order], return_inverse=True)
        if uniq.size and (uniq[0] < 0 or uniq[-1] >= ds.shape[0]):
            raise StoreError(f"row index out of range for {self.path} ({ds.shape[0]} rows)")
        if uniq.size > 1 and (uniq[-1] - uniq[0] + 1) <= 2 * uniq.size:
            block = ds[int(uniq[0]):int(uniq[-1]) + 1]
            rows = block[uniq - uniq[0]]
        else:
            rows = ds[uniq] if uniq.size > 1 else ds[int(uniq[0]):int(uniq[0]) + 1]
        out = np.empty((idx.size, *rows.shape[1:]), dtype=rows.dtype)
        out[order] = rows[inverse]
        return out

    def images(self, indices: np.ndarray | list[int] | slice) -> np.ndarray:
        """uint8 images [n, H, W, 3]."""
        return self.read("images", indices)

    def load_images(self, indices: np.ndarray | None = None) -> np.ndarray:
        """Read images into memory in contiguous blocks (fast path for training on small stores)."""
        if indices is None:
            with self._reading("/samples/images"):
                return self.h5["samples"]["images"][()]
        return self.read("images", indices)

    def records(self, group: str) -> dict[str, np.ndarray]:
        """The 1-D datasets of a group beside ``/samples`` by name (``"rejections"``); empty when absent."""
        if group in ("samples", "classes"):
            raise StoreError(f"/{group} is read with column() and classes, not records()")
        if isinstance(self.h5.get(group, getlink=True), h5py.ExternalLink):
            raise StoreError(f"{self.path}: /{group} links to another file", hint="stores must be self-contained")
        grp = self.h5.get(group)
        if not isinstance(grp, h5py.Group):
            return {}
        out = {}
        for name in grp:
            where = f"/{group}/{name}"
            ds = None if isinstance(grp.get(name, getlink=True), h5py.ExternalLink) else grp.get(name)
            if not isinstance(ds, h5py.Dataset) or len(ds.shape or ()) != 1 or ds.shape[0] > MAX_ROWS:
                raise StoreError(f"{self.path}: {where} is not a list of at most {MAX_ROWS} values", hint=DAMAGED_HINT)
            check_storage(self.path, where, ds)
            with self._reading(where):
                out[name] = decode(ds[()], f"{self.path}: {where}")
        return out

    def summary(self) -> dict[str, Any]:
        """Counts per split and class, resolution, masks, provenance: what `dsc info` shows."""
        labels = self.labels if "labels" in self._columns else np.zeros(len(self), dtype=np.int64)
        names = np.array([self.classes[lab] if 0 <= lab < len(self.classes) else ("ood" if lab < 0 else str(lab))
                          for lab in labels.tolist()], dtype=object)
        if self.has("holdout") and self.has("holdout_label") and self.holdout_classes:
            hl = self.column("holdout_label").astype(np.int64)
            for i in np.flatnonzero(self.holdout):
                if 0 <= hl[i] < len(self.holdout_classes):
                    names[i] = self.holdout_classes[hl[i]]
        order = {name: i for i, name in enumerate(self.classes + self.holdout_classes)}
        counts: dict[str, dict[str, int]] = {}
        present = set(self.split.tolist())
        for split in [s for s in SPLITS if s in present] + sorted(present - set(SPLITS)):
            sel = names[self.split == split]
            values, n = np.unique(sel.astype(str), return_counts=True) if sel.size else ([], [])
            pairs = sorted(zip(values, n, strict=True), key=lambda p: (order.get(p[0], len(order)), p[0]))
            counts[split] = {str(v): int(c) for v, c in pairs}
        return {
            "path": str(self.path), "kind": self.kind, "n": len(self), "classes": self.classes,
            "holdout_classes": self.holdout_classes, "holdout": int(self.holdout.sum()),
            "image_shape": list(self.image_shape) if self.image_shape else None, "masks": self.has_masks,
            "counts": counts, "columns": self.columns,
            "attrs": {k: v for k, v in self.attrs.items()},
        }


def read_everything_small(path: Path) -> None:
    """Open a store and read all its metadata, every 1-D column and class list, and the first and last
    row of the larger columns: what the guard's child does before a store is opened (see ``guard``)."""
    with Store(path) as st:
        _ = st.classes, st.holdout_classes
        n = len(st)
        for name, (shape, _dtype) in st._columns.items():
            if len(shape) == 1:
                st.column(name)
            elif n:
                st.read(name, [0, n - 1])
        grp = st.h5.get("classes")
        for name in grp if isinstance(grp, h5py.Group) else ():
            st.class_array(name)
        st.records(REJECTIONS)


def open_store(path: Path | str, kind: str | None = None) -> Store:
    """Open and validate a store; ``kind`` ("data", "synthetic", "embeddings") is checked when given."""
    return Store(path, kind=kind)


def check_same_source(data: Store, other: Store, *, training: bool = True) -> None:
    """Refuse a synthetic store made from another DATA.h5, or an evaluation-only store in training."""
    src = other.attrs.get("inputs", {}).get("data_fingerprint") if isinstance(other.attrs.get("inputs"), dict) \
        else None
    if src != data.fingerprint:
        raise MismatchError(
            f"{other.path} was made from a store with fingerprint {src}, not {data.path} ({data.fingerprint})",
            hint="use synthetic stores generated from this DATA.h5")
    if training and other.evaluation_only:
        raise MismatchError(f"{other.path} is evaluation-only (generated from val/test images)",
                            hint="training commands accept only stores generated from the train split")


def _a(word: str) -> str:
    """``"an embeddings"``, ``"a data"``."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"
