"""Reading stores. ``Store`` validates on construction and opens the HDF5 file lazily, once per process,
so it can be handed to DataLoader workers (it pickles without its handle)."""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from dsc.errors import InputError, MismatchError, StoreError
from dsc.store.schema import FORMAT, JSON_ATTRS, KINDS, SCHEMA_VERSION, SPLITS


def _decode(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in ("O", "S"):
        return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values], dtype=object)
    return values


class Store:
    """A dsc store on disk (read-only)."""

    def __init__(self, path: Path | str, kind: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path} does not exist", hint="check the path")
        if self.path.is_dir():
            raise InputError(f"{self.path} is a directory, not a dsc store (.h5 file)")
        try:
            with h5py.File(self.path, "r") as h5:
                raw = dict(h5.attrs)
                self._columns = {k: (tuple(v.shape), v.dtype) for k, v in h5["samples"].items()} if (
                    "samples" in h5) else {}
                self._has_classes = "classes" in h5 and "names" in h5["classes"]
        except OSError as exc:
            raise StoreError(f"{self.path} is not a readable HDF5 file ({exc})",
                             hint="the file is truncated or of another format; recreate it") from None
        self.attrs = self._parse_attrs(raw)
        if self.attrs.get("format") != FORMAT:
            raise StoreError(f"{self.path} is an HDF5 file but not a dsc store",
                             hint="create stores with `dsc subset`, `dsc augment` or `dsc probe`")
        version = self.attrs.get("schema_version")
        if not isinstance(version, (int, np.integer)) or version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} uses store schema {version}, newer than this dsc supports "
                             f"({SCHEMA_VERSION})", hint="upgrade dsc: pip install -U dsc")
        if self.attrs.get("kind") not in KINDS:
            raise StoreError(f"{self.path} has unknown store kind {self.attrs.get('kind')!r}")
        if not self.attrs.get("complete", True):
            raise StoreError(f"{self.path} is incomplete", hint="rerun the command that made it with --resume")
        if kind is not None and self.kind != kind:
            raise MismatchError(f"{self.path} is a {self.kind} store, expected a {kind} store")
        n = {shape[0] for shape, _ in self._columns.values()}
        if len(n) > 1:
            raise StoreError(f"{self.path} is corrupt: its columns have different lengths",
                             hint="recreate it")
        for name, (shape, _dtype) in self._columns.items():
            if name == "images" and (len(shape) != 4 or shape[-1] != 3):
                raise StoreError(f"{self.path}: /samples/images has shape {shape}, expected [N, H, W, 3]")
        self._h5: h5py.File | None = None
        self._pid: int | None = None

    @staticmethod
    def _parse_attrs(raw: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in raw.items():
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if isinstance(value, np.generic):
                value = value.item()
            if key in JSON_ATTRS and isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    raise StoreError(f"attribute {key!r} is not valid JSON", hint="recreate the store") from None
            out[key] = value
        return out

    # ------------------------------------------------------------------------------------- handles
    @property
    def h5(self) -> h5py.File:
        """The open file, opened on first use in each process."""
        if self._h5 is None or self._pid != os.getpid():
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
        return [str(x) for x in _decode(self.h5["classes"]["names"][()])]

    def class_array(self, name: str) -> np.ndarray | None:
        grp = self.h5["classes"]
        return _decode(grp[name][()]) if name in grp else None

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
        return _decode(self.h5["samples"][name][()])

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
    def holdout_classes(self) -> list[str]:
        """Names of the held-out classes (``/classes/holdout_names``), in the order of ``holdout_label``."""
        if not self._has_classes or "holdout_names" not in self.h5["classes"]:
            return []
        return [str(x) for x in _decode(self.h5["classes"]["holdout_names"][()])]

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
        ds = self.h5["samples"]["images"]
        if indices is None:
            return ds[()]
        return self.read("images", indices)

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
