"""What opening a store checks: bounded work on untrusted files (docs/security.md), metadata only.

The root attributes (each at most ``MAX_ATTR_BYTES``; only the keys in ``JSON_ATTRS`` are parsed, with
``json.loads``, as data), the shapes and dtypes of ``/samples/*`` (standard columns must have the dtype family
of ``dsc.store.schema.COLUMNS`` and their documented shape), that the declared row count is backed by data
and that nothing is stored outside the file. Problems are a one-line ``StoreError``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from dsc.errors import StoreError
from dsc.store.schema import FORMAT, JSON_ATTRS, KINDS, SCHEMA_VERSION, family_of

#: Limits that bound the work and memory of opening a store (far above anything dsc writes).
MAX_ROWS = 2**31
MAX_SIDE = 16384                 # image/mask height and width
MAX_ROW_BYTES = 2**30            # one row of any column
MAX_CLASSES = 1_000_000
MAX_ATTRS = 512
MAX_ATTR_BYTES = 4 * 2**20       # one root attribute

#: Per-row column families (dsc.store.schema): what the error calls them and the numpy kinds accepted.
PER_ROW = {"int": ("integers", "iu"), "bool": ("booleans", "biu"), "float": ("floats", "fiu"), "str": ("strings", "")}
#: JSON attributes holding a list (the other ``JSON_ATTRS`` hold an object).
JSON_LIST_ATTRS = ("class_info",)

DAMAGED_HINT = "the file is truncated or corrupt; recreate it with the command that made it"


def decode(values: np.ndarray, where: str = "store") -> np.ndarray:
    """Text columns as ``str`` objects (other dtypes unchanged); text that is not UTF-8 is a ``StoreError``."""
    if values.dtype.kind in ("O", "S"):
        try:
            return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values],
                            dtype=object)
        except UnicodeDecodeError:
            raise StoreError(f"{where} holds text that is not UTF-8", hint=DAMAGED_HINT) from None
    return values


def is_str_dtype(dtype: np.dtype) -> bool:
    return h5py.check_string_dtype(dtype) is not None or dtype.kind in ("S", "U")


def check_column(path: Path, name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Dtype and shape rules of the standard columns; a ``StoreError`` naming what is wrong."""
    where = f"{path}: /samples/{name}"
    kind = dtype.kind
    if len(shape) == 0:
        raise StoreError(f"{where} is a scalar, not a column", hint=DAMAGED_HINT)
    row_bytes = int(np.prod(shape[1:], dtype=np.float64) * max(dtype.itemsize, 1)) if len(shape) > 1 else 0
    if row_bytes > MAX_ROW_BYTES:
        raise StoreError(f"{where} declares rows of {row_bytes} bytes ({list(shape[1:])}), too large",
                         hint=DAMAGED_HINT)
    if name == "images":
        if len(shape) != 4 or shape[-1] != 3:
            raise StoreError(f"{where} has shape {list(shape)}, expected [N, H, W, 3]", hint=DAMAGED_HINT)
        if dtype != np.uint8:
            raise StoreError(f"{where} has dtype {dtype}, expected uint8", hint=DAMAGED_HINT)
    elif name == "masks":
        if len(shape) != 3 or (dtype != np.uint8 and kind != "b"):
            raise StoreError(f"{where} has shape {list(shape)} and dtype {dtype}, expected uint8 [N, H, W]",
                             hint=DAMAGED_HINT)
    elif name == "digest":
        if len(shape) != 1 or kind != "S" or dtype.itemsize != 16:
            raise StoreError(f"{where} has shape {list(shape)} and dtype {dtype}, expected 16-byte digests",
                             hint=DAMAGED_HINT)
    elif name == "features":
        if len(shape) != 2 or kind != "f":
            raise StoreError(f"{where} has shape {list(shape)} and dtype {dtype}, expected float [N, D]",
                             hint=DAMAGED_HINT)
    elif (family := family_of(name)) in PER_ROW:
        expected, kinds = PER_ROW[family]
        ok = is_str_dtype(dtype) if family == "str" else kind in kinds
        if len(shape) != 1 or not ok:
            raise StoreError(f"{where} has shape {list(shape)} and dtype {dtype}, expected one of {expected} "
                             "per row", hint=DAMAGED_HINT)
    if name in ("images", "masks") and max(shape[1:3]) > MAX_SIDE:
        raise StoreError(f"{where} declares {shape[1]}x{shape[2]} images, larger than {MAX_SIDE}",
                         hint=DAMAGED_HINT)


def check_storage(path: Path, where: str, ds: h5py.Dataset) -> None:
    """Refuse data stored outside the file: external raw files, or virtual sources outside its folder."""
    if ds.external:
        raise StoreError(f"{path}: {where} keeps its data in external files, which dsc does not read",
                         hint="stores must be self-contained")
    if ds.is_virtual:
        folder = path.resolve().parent
        for src in ds.virtual_sources():
            if src.file_name == ".":
                continue
            target = (folder / src.file_name).resolve()
            if folder not in target.parents:
                raise StoreError(f"{path}: {where} reads {src.file_name}, outside the store's folder",
                                 hint="virtual datasets may only use files next to the store")


def backed_rows(ds: h5py.Dataset) -> int:
    """How many rows of ``ds`` have storage on disk (chunked: allocated chunks; contiguous: bytes)."""
    if ds.is_virtual:
        return int(ds.shape[0])
    if ds.chunks is not None:
        return int(ds.id.get_num_chunks()) * int(ds.chunks[0])
    row = max(int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize, 1)
    return int(ds.id.get_storage_size()) // row


def read_attrs(path: Path, h5: h5py.File) -> dict[str, Any]:
    """Root attributes as Python values, within the limits; ``JSON_ATTRS`` parsed (data only)."""
    return _parse_attrs(path, _raw_attrs(path, h5))


def check_header(path: Path, attrs: dict[str, Any]) -> None:
    """Format, schema version, kind and completeness."""
    fmt = attrs.get("format")
    if not isinstance(fmt, str) or fmt != FORMAT:
        raise StoreError(f"{path} is an HDF5 file but not a dsc store",
                         hint="create stores with `dsc subset`, `dsc augment` or `dsc probe`")
    version = attrs.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise StoreError(f"{path} has an invalid schema_version {version!r}", hint=DAMAGED_HINT)
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path} uses store schema {version}, newer than this dsc supports "
                         f"({SCHEMA_VERSION})", hint="upgrade dsc: pip install -U dsc")
    store_kind = attrs.get("kind")
    if not isinstance(store_kind, str) or store_kind not in KINDS:
        raise StoreError(f"{path} has unknown store kind {store_kind!r}")
    complete = attrs.get("complete", True)
    if not isinstance(complete, (bool, int)) or not complete:
        raise StoreError(f"{path} is incomplete", hint="rerun the command that made it with --resume")


def check_samples(path: Path, h5: h5py.File) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``/samples``: every column checked; returns their shapes and dtypes."""
    for group in ("samples", "classes"):
        if isinstance(h5.get(group, getlink=True), h5py.ExternalLink):
            raise StoreError(f"{path}: /{group} links to another file", hint="stores must be self-contained")
    samples = h5.get("samples")
    if not isinstance(samples, h5py.Group):
        raise StoreError(f"{path} has no /samples group", hint=DAMAGED_HINT)
    columns: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    for name in samples:
        if isinstance(samples.get(name, getlink=True), h5py.ExternalLink):
            raise StoreError(f"{path}: /samples/{name} links to another file",
                             hint="stores must be self-contained")
        ds = samples.get(name)
        if not isinstance(ds, h5py.Dataset):
            raise StoreError(f"{path}: /samples/{name} is not a dataset", hint=DAMAGED_HINT)
        shape, dtype = tuple(int(x) for x in ds.shape or ()), ds.dtype
        check_column(path, name, shape, dtype)
        check_storage(path, f"/samples/{name}", ds)
        columns[name] = (shape, dtype)
    if "digest" not in columns:
        raise StoreError(f"{path} has no /samples/digest column", hint=DAMAGED_HINT)
    n = {shape[0] for shape, _ in columns.values()}
    if len(n) > 1:
        raise StoreError(f"{path} is corrupt: its columns have different lengths", hint="recreate it")
    rows = n.pop()
    if rows > MAX_ROWS:
        raise StoreError(f"{path} declares {rows} rows, more than dsc reads ({MAX_ROWS})",
                         hint=DAMAGED_HINT)
    backed = backed_rows(samples["digest"])
    if backed < rows:
        raise StoreError(f"{path} declares {rows} rows but holds data for {backed}",
                         hint=DAMAGED_HINT)
    if "images" in columns and "masks" in columns and \
            columns["masks"][0][1:] != columns["images"][0][1:3]:
        raise StoreError(f"{path}: masks {list(columns['masks'][0][1:])} and images "
                         f"{list(columns['images'][0][1:3])} differ in size", hint=DAMAGED_HINT)
    return columns


def check_classes(path: Path, h5: h5py.File) -> bool:
    """``/classes``: short self-contained lists, ``names`` text. False when the store has no class names."""
    classes = h5.get("classes")
    if not (isinstance(classes, h5py.Group) and "names" in classes):
        return False
    for name in classes:
        if isinstance(classes.get(name, getlink=True), h5py.ExternalLink):
            raise StoreError(f"{path}: /classes/{name} links to another file",
                             hint="stores must be self-contained")
        ds = classes.get(name)
        if not isinstance(ds, h5py.Dataset) or len(ds.shape or ()) != 1 or ds.shape[0] > MAX_CLASSES:
            raise StoreError(f"{path}: /classes/{name} is not a list of at most {MAX_CLASSES} "
                             "values", hint=DAMAGED_HINT)
        check_storage(path, f"/classes/{name}", ds)
    if not is_str_dtype(classes["names"].dtype) or backed_rows(classes["names"]) < \
            classes["names"].shape[0]:
        raise StoreError(f"{path}: /classes/names is not a list of class names", hint=DAMAGED_HINT)
    return True


def _raw_attrs(path: Path, h5: h5py.File) -> dict[str, Any]:
    names = list(h5.attrs)
    if len(names) > MAX_ATTRS:
        raise StoreError(f"{path} has {len(names)} root attributes, more than {MAX_ATTRS}",
                         hint=DAMAGED_HINT)
    raw = {}
    for name in names:
        try:
            size = h5.attrs.get_id(name).get_storage_size()
        except RuntimeError:  # an empty (null dataspace) attribute
            size = 0
        value = h5.attrs[name] if size <= MAX_ATTR_BYTES else None
        if isinstance(value, (str, bytes, np.ndarray)):  # variable-length text is not in the storage size
            size = max(size, value.nbytes if isinstance(value, np.ndarray) else len(value))
        if size > MAX_ATTR_BYTES:
            raise StoreError(f"{path}: attribute {name!r} is {size} bytes, more than {MAX_ATTR_BYTES}",
                             hint=DAMAGED_HINT)
        raw[name] = value
    return raw


def _parse_attrs(path: Path, raw: dict[str, Any]) -> dict[str, Any]:
    """Root attributes as Python values; ``JSON_ATTRS`` parsed with ``json.loads`` (data only)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, np.generic):
            value = value.item()
        if key in JSON_ATTRS:
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except (json.JSONDecodeError, RecursionError):
                    raise StoreError(f"{path}: attribute {key!r} is not valid JSON",
                                     hint="recreate the store") from None
            want = list if key in JSON_LIST_ATTRS else dict
            if not isinstance(value, want):
                raise StoreError(f"{path}: attribute {key!r} should hold a JSON "
                                 f"{'array' if want is list else 'object'}, not {type(value).__name__}",
                                 hint=DAMAGED_HINT)
        out[key] = value
    return out
