"""Writing stores: append rows in batches to a ``.partial`` file, rename it when complete.

The file is flushed after every batch, so a crash leaves a readable ``.partial`` that ``resume=True``
continues. A writer holds ``<output>.lock`` from construction to ``finalize``/``close`` (a second process
writing the same output is refused, see ``dsc.locks.output_lock``). A full disk raises ``ResourceError``;
the batch being written is rolled back, so the partial file keeps every earlier batch. The fingerprint (content identity) is derived from a per-row digest column, so it is cheap to
compute and does not depend on how the rows were batched or resumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from dsc import __version__
from dsc.errors import OutputExistsError, StoreError
from dsc.locks import OutputLock
from dsc.outputs import check_output, commit, disk_full_error, is_disk_full, partial_path, remove
from dsc.provenance import now
from dsc.store.schema import COLUMNS, FORMAT, JSON_ATTRS, KIND_COLUMNS, KINDS, SCHEMA_VERSION, row_columns

log = logging.getLogger(__name__)
STR = h5py.string_dtype("utf-8")


class Precompressed(list):
    """Rows of a column already deflate-compressed with ``zlib.compress(row.tobytes())``, one per row.

    ``append`` writes them as HDF5 chunks directly (no second compression in the writing process), which
    lets worker processes do the compression. Only for columns with one row per chunk.
    """


def row_digest(image: np.ndarray) -> bytes:
    """16-byte digest of one image's pixels and shape."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.digest()


class StoreWriter:
    """Create (or resume) a store at ``path``.

    >>> with StoreWriter(path, kind="data", attrs={...}) as w:   # doctest: +SKIP
    ...     w.set_classes(["gear", "bolt"])
    ...     w.create_column("images", (64, 64, 3), chunk_rows=1)
    ...     w.create_row_columns()   # labels, split, ...: the kind's columns (dsc.store.schema)
    ...     w.append(images=batch, labels=labels, split=split, ...)
    ...     w.finalize()

    Without ``finalize`` the partial file is removed on error, unless ``resume=True`` (then it is kept).
    """

    def __init__(self, path: Path, *, kind: str, attrs: dict[str, Any] | None = None,
                 force: bool = False, resume: bool = False, compression: str | None = "gzip",
                 lock: OutputLock | None = None) -> None:
        self.path = Path(path)
        if kind not in KINDS:
            raise StoreError(f"unknown store kind {kind!r}", hint=f"one of {', '.join(KINDS)}")
        self.partial = partial_path(self.path)
        self.resume = resume
        self.compression = compression
        self._finalized = False
        if lock is None:
            check_output(self.path, force=force, resume=resume)
            lock = OutputLock(self.path).acquire()
        self._lock = lock  # given: the caller's dsc.jobs.Job checked the output and holds its lock
        try:
            self._open(kind, attrs, resume)
        except BaseException:
            if getattr(self, "h5", None) is not None and self.h5.id.valid:
                self.h5.close()
            self._lock.release()
            raise

    def _open(self, kind: str, attrs: dict[str, Any] | None, resume: bool) -> None:
        if self.path.exists() and resume and not self.partial.exists():
            raise OutputExistsError(f"{self.path} is already complete",
                                    hint="nothing to resume; pass --force to recreate it")
        self.kind = kind
        self.resumed = resume and self.partial.exists()
        try:
            self.h5 = h5py.File(self.partial, "a" if self.resumed else "w")
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full_error(self.partial, resumable=self.resumed) from None
            if self.resumed:
                raise StoreError(f"cannot resume {self.partial}: {exc}",
                                 hint="the partial file is damaged; pass --force to start over") from None
            raise
        if not self.resumed:
            self.h5.attrs.update({"format": FORMAT, "schema_version": SCHEMA_VERSION, "kind": kind,
                                  "dsc_version": __version__, "created": now(), "complete": False})
            self.h5.require_group("samples")
            self.h5.require_group("classes")
            self.create_column("digest", (), "S16")
        elif self.h5.attrs.get("kind") != kind:
            raise StoreError(f"{self.partial} is a {self.h5.attrs.get('kind')} store, not {kind}",
                             hint="pass --force to start over")
        if attrs:
            self.set_attrs(**attrs)

    @contextmanager
    def _disk_full(self) -> Iterator[None]:
        """Turn "no space left" (errno 28 from h5py/HDF5) into a one-line ``ResourceError``."""
        try:
            yield
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full_error(self.partial, resumable=self.resume) from None
            raise

    # ------------------------------------------------------------------------------------ structure
    @property
    def samples(self) -> h5py.Group:
        return self.h5["samples"]

    def __len__(self) -> int:
        return int(self.samples["digest"].shape[0])

    def create_column(self, name: str, shape: tuple[int, ...] = (), dtype: Any = None, *,
                      chunk_rows: int | None = None, compress: bool | None = None) -> None:
        """A resizable column with rows of ``shape``. Images: ``chunk_rows=1`` and compression.

        ``dtype`` defaults to the schema's (``dsc.store.schema.COLUMNS``); a standard column of another store
        kind is refused.
        """
        spec = COLUMNS.get(name)
        if spec is not None and name not in KIND_COLUMNS[self.kind]:
            raise StoreError(f"/samples/{name} is not a column of {self.kind} stores",
                             hint=f"they have {', '.join(KIND_COLUMNS[self.kind])} (dsc/store/schema.py)")
        if dtype is None:
            if spec is None:
                raise StoreError(f"create_column({name!r}) needs a dtype: it is not a standard column")
            dtype = spec.dtype
        if name in self.samples:
            return
        dtype = STR if dtype is str else dtype
        big = int(np.prod(shape)) >= 4096 if shape else False
        chunk_rows = chunk_rows or (1 if big else 1024)
        compress = big if compress is None else compress
        kwargs = {"compression": self.compression, "compression_opts": 4} if (
            compress and self.compression == "gzip") else ({"compression": self.compression} if compress and
                                                          self.compression else {})
        with self._disk_full():
            self.samples.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                                    chunks=(chunk_rows, *shape), **kwargs)

    def create_row_columns(self) -> None:
        """Every one-value-per-row column of this kind of store, with the schema's dtypes."""
        for column in row_columns(self.kind):
            self.create_column(column.name)

    def add_group(self, name: str, columns: dict[str, np.ndarray], **attrs: Any) -> None:
        """A group beside ``/samples`` of parallel 1-D datasets (``/rejections``), replacing any of the same
        names, with attributes of its own (``count``). Read back with ``Store.records``."""
        if name in ("samples", "classes"):
            raise StoreError(f"/{name} is written with create_column/append and set_classes, not add_group")
        lengths = {key: len(values) for key, values in columns.items()}
        if len(set(lengths.values())) > 1:
            raise StoreError(f"add_group {name}: columns have different lengths {lengths}")
        with self._disk_full():
            grp = self.h5.require_group(name)
            for key, values in columns.items():
                if key in grp:
                    del grp[key]
                grp.create_dataset(key, data=values)
            grp.attrs.update(attrs)

    def set_classes(self, names: list[str], **extra: list[Any]) -> None:
        """Class names (and optional per-class string arrays such as tokens or super-classes)."""
        grp = self.h5["classes"]
        with self._disk_full():
            for key, values in {"names": names, **extra}.items():
                if key in grp:
                    del grp[key]
                if values and not isinstance(values[0], str):
                    grp.create_dataset(key, data=np.asarray(values))
                else:
                    grp.create_dataset(key, data=np.asarray(values, dtype=object), dtype=STR)

    def set_attrs(self, **attrs: Any) -> None:
        """Root attributes; dicts/lists are stored as JSON strings."""
        for key, value in attrs.items():
            if value is None:
                continue
            if isinstance(value, (dict, list, tuple)) or key in JSON_ATTRS:
                value = json.dumps(value, default=str, sort_keys=False)
            if isinstance(value, str) and len(value.encode()) > 60_000:
                raise StoreError(f"attribute {key!r} is too large for an HDF5 attribute")
            with self._disk_full():
                self.h5.attrs[key] = value

    # ------------------------------------------------------------------------------------------ rows
    def append(self, **columns: Any) -> None:
        """Append rows. Every existing column must be given, all with the same number of rows."""
        images = columns.get("images")
        if "digest" not in columns:
            if images is None or isinstance(images, Precompressed):
                raise StoreError("append needs an 'images' column or explicit 'digest' values")
            columns["digest"] = np.array([row_digest(im) for im in images], dtype="S16")
        missing = set(self.samples) - set(columns)
        unknown = set(columns) - set(self.samples)
        if missing or unknown:
            raise StoreError(f"append: missing columns {sorted(missing)}, unknown {sorted(unknown)}")
        lengths = {k: len(v) for k, v in columns.items()}
        if len(set(lengths.values())) != 1:
            raise StoreError(f"append: columns have different lengths {lengths}")
        n = next(iter(lengths.values()))
        start = len(self)
        try:
            for key, values in columns.items():
                ds = self.samples[key]
                ds.resize(start + n, axis=0)
                if isinstance(values, Precompressed):
                    self._write_chunks(ds, start, values)
                    continue
                info = h5py.check_string_dtype(ds.dtype)
                if info is not None and info.length is None:
                    values = np.asarray(
                        [v if isinstance(v, str) else json.dumps(v, default=str) for v in values], dtype=object)
                ds[start:start + n] = values
            self.h5.flush()
        except BaseException as exc:
            self._rollback(start)
            if is_disk_full(exc):
                raise disk_full_error(self.partial, resumable=self.resume) from None
            raise

    def _rollback(self, rows: int) -> None:
        """Cut every column back to ``rows`` after a failed append (best effort: the disk may be full)."""
        try:
            for ds in self.samples.values():
                if ds.shape[0] != rows:
                    ds.resize(rows, axis=0)
            self.h5.flush()
        except Exception as exc:  # noqa: BLE001 - the original error is the one to report
            log.debug("rollback of %s to %d rows failed: %s", self.partial, rows, exc)

    def _write_chunks(self, ds: h5py.Dataset, start: int, chunks: Precompressed) -> None:
        direct = (ds.chunks is not None and ds.chunks[0] == 1 and ds.compression == "gzip"
                  and not ds.shuffle and not ds.fletcher32 and ds.scaleoffset is None)
        zeros = (0,) * (ds.ndim - 1)
        for i, chunk in enumerate(chunks):
            if direct:
                ds.id.write_direct_chunk((start + i, *zeros), bytes(chunk))
            else:  # another filter pipeline: decompress and let HDF5 encode the row
                ds[start + i] = np.frombuffer(zlib.decompress(chunk), dtype=ds.dtype).reshape(ds.shape[1:])

    # ----------------------------------------------------------------------------------- completion
    def fingerprint(self) -> str:
        """Content identity: classes, digests, labels and splits (hex, 16 chars); the soft targets of mixed rows
        (``other_label``, ``mix_weight``) when any row is mixed (so every unmixed store keeps its fingerprint)."""
        h = hashlib.sha256()
        names = self.h5["classes"]["names"][()] if "names" in self.h5["classes"] else []
        h.update(json.dumps([n.decode() if isinstance(n, bytes) else str(n) for n in names]).encode())
        for key in ("digest", "labels", "split", "is_ood", "holdout"):
            if key in self.samples:
                h.update(np.asarray(self.samples[key][()]).tobytes() if key != "split" else
                         "\n".join(s.decode() for s in self.samples[key][()]).encode())
        if "mix_weight" in self.samples and np.any(self.samples["mix_weight"][()]):
            for key in ("other_label", "mix_weight"):
                if key in self.samples:
                    h.update(np.asarray(self.samples[key][()]).tobytes())
        return h.hexdigest()[:16]

    def finalize(self) -> Path:
        """Stamp fingerprint and completion, close, and rename the partial file into place."""
        with self._disk_full():
            self.h5.attrs["fingerprint"] = self.fingerprint()
            self.h5.attrs["complete"] = True
            self.h5.attrs["finished"] = now()
            self.h5.close()
            commit(self.partial, self.path)
        self._finalized = True
        self._lock.release()
        log.debug("wrote %s", self.path)
        return self.path

    def close(self) -> None:
        """Close the file and release the output lock (the partial file stays for ``--resume``)."""
        try:
            self._close_file()
        finally:
            self._lock.release()

    def _close_file(self) -> None:
        if self.h5.id.valid:
            with self._disk_full():
                self.h5.close()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._finalized:
            return
        try:
            self._close_file()
        except Exception:  # noqa: BLE001 - closing after an error (a full disk) must not hide that error
            if exc_type is None:
                self._lock.release()
                raise
            log.debug("closing %s after an error failed", self.partial, exc_info=True)
        try:
            if exc_type is not None and not self.resume:
                remove(self.partial)  # while still holding the lock: the partial file is ours
        finally:
            self._lock.release()
