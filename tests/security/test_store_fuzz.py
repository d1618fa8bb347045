"""The store reader on malformed files: every case gives a one-line StoreError (or opens and reads cleanly),
never another exception, a hang or a crash."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from dsc.errors import StoreError
from dsc.store import open_store
from tests.security.fuzzlib import exercise, write_valid_store

FUZZLIB = Path(__file__).with_name("fuzzlib.py")
STR = h5py.string_dtype("utf-8")


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> Path:
    return write_valid_store(tmp_path_factory.mktemp("valid") / "DATA.h5")


def _replace(h5: h5py.File, name: str, data=None, **kwargs) -> None:
    del h5[name]
    h5.create_dataset(name, data=data, **kwargs)


def _samples_rows(h5: h5py.File) -> int:
    return h5["samples/digest"].shape[0]


# (id, edit of a valid store opened "a", fragment of the expected error)
CASES = [
    ("float-images", lambda h5: _replace(h5, "samples/images", np.zeros((6, 8, 8, 3), np.float32)), "dtype float32"),
    ("images-nhw", lambda h5: _replace(h5, "samples/images", np.zeros((6, 8, 8), np.uint8)), "expected [N, H, W, 3]"),
    ("images-rgba", lambda h5: _replace(h5, "samples/images", np.zeros((6, 8, 8, 4), np.uint8)),
     "expected [N, H, W, 3]"),
    ("images-huge-side", lambda h5: _replace(h5, "samples/images", shape=(6, 100_000, 100_000, 3), dtype=np.uint8,
                                             chunks=(1, 64, 64, 3)), "too large"),
    ("masks-size", lambda h5: _replace(h5, "samples/masks", np.zeros((6, 4, 4), np.uint8)), "differ in size"),
    ("masks-float", lambda h5: _replace(h5, "samples/masks", np.zeros((6, 8, 8), np.float64)), "expected uint8"),
    ("string-labels", lambda h5: _replace(h5, "samples/labels", np.array(["a"] * 6, dtype=object), dtype=STR),
     "expected one of integers"),
    ("float-labels", lambda h5: _replace(h5, "samples/labels", np.zeros(6, np.float32)), "expected one of integers"),
    ("labels-2d", lambda h5: _replace(h5, "samples/labels", np.zeros((6, 2), np.int64)), "expected one of integers"),
    ("int-split", lambda h5: _replace(h5, "samples/split", np.zeros(6, np.int64)), "expected one of strings"),
    ("short-column", lambda h5: _replace(h5, "samples/labels", np.zeros(5, np.int64)), "different lengths"),
    ("scalar-column", lambda h5: _replace(h5, "samples/labels", 3), "is a scalar"),
    ("column-is-group", lambda h5: (h5.__delitem__("samples/group"), h5.create_group("samples/group")),
     "is not a dataset"),
    ("no-samples", lambda h5: h5.__delitem__("samples"), "no /samples group"),
    ("samples-is-dataset", lambda h5: (h5.__delitem__("samples"), h5.create_dataset("samples", data=[1, 2])),
     "no /samples group"),
    ("no-digest", lambda h5: h5.__delitem__("samples/digest"), "no /samples/digest"),
    ("digest-dtype", lambda h5: _replace(h5, "samples/digest", np.zeros(6, np.int64)), "16-byte digests"),
    ("huge-rows-no-data", lambda h5: [
        _replace(h5, f"samples/{k}", shape=(10**12, *h5[f"samples/{k}"].shape[1:]), dtype=h5[f"samples/{k}"].dtype,
                 chunks=(1024, *h5[f"samples/{k}"].shape[1:]), maxshape=(None, *h5[f"samples/{k}"].shape[1:]))
        for k in list(h5["samples"])], "more than dsc reads"),
    ("many-rows-no-data", lambda h5: [
        h5[f"samples/{k}"].resize(10**8, axis=0) for k in list(h5["samples"])], "holds data for"),
    ("huge-json-attr", lambda h5: h5.attrs.__setitem__("settings", '{"a": "' + "x" * (8 * 2**20) + '"}'), "more than"),
    ("corrupt-json-attr", lambda h5: h5.attrs.__setitem__("settings", "{not json"), "not valid JSON"),
    ("deep-json-attr", lambda h5: h5.attrs.__setitem__("settings", "[" * 50_000), "not valid JSON"),
    ("json-attr-wrong-type", lambda h5: h5.attrs.__setitem__("settings", "[1, 2]"), "JSON object"),
    ("json-list-attr-wrong-type", lambda h5: h5.attrs.__setitem__("class_info", "{}"), "JSON array"),
    ("non-utf8-json-attr", lambda h5: h5.attrs.__setitem__("settings", np.bytes_(b"{\"a\": \"\xff\xfe\"}")), None),
    ("format-array", lambda h5: h5.attrs.__setitem__("format", np.array([b"dsc-store", b"x"])), "not a dsc store"),
    ("format-missing", lambda h5: h5.attrs.__delitem__("format"), "not a dsc store"),
    ("schema-string", lambda h5: h5.attrs.__setitem__("schema_version", "1"), "invalid schema_version"),
    ("schema-zero", lambda h5: h5.attrs.__setitem__("schema_version", 0), "invalid schema_version"),
    ("kind-array", lambda h5: h5.attrs.__setitem__("kind", np.array([1, 2])), "unknown store kind"),
    ("complete-array", lambda h5: h5.attrs.__setitem__("complete", np.array([1, 0])), "incomplete"),
    ("incomplete", lambda h5: h5.attrs.__setitem__("complete", False), "incomplete"),
    ("empty-attr", lambda h5: h5.attrs.__setitem__("settings", h5py.Empty("f")), "JSON object"),
    ("non-utf8-split", lambda h5: _replace(h5, "samples/split", np.array([b"tr\xffin"] * 6, dtype="S6")), "not UTF-8"),
    ("non-utf8-classes", lambda h5: _replace(h5, "classes/names", np.array([b"\xff", b"b"], dtype="S1")),
     "not UTF-8"),
    ("int-class-names", lambda h5: _replace(h5, "classes/names", np.array([1, 2])), "not a list of class names"),
    ("classes-2d", lambda h5: _replace(h5, "classes/names", np.array([["a"], ["b"]], dtype=object), dtype=STR),
     "is not a list"),
    ("huge-classes", lambda h5: _replace(h5, "classes/names", shape=(10**9,), dtype=STR, chunks=(1024,)),
     "is not a list"),
    ("labels-out-of-range", lambda h5: h5["samples/labels"].__setitem__(slice(None), 99), None),
    ("external-link", lambda h5: (h5.__delitem__("samples"),
                                  h5.__setitem__("samples", h5py.ExternalLink("/etc/other.h5", "/samples"))),
     "links to another file"),
    ("external-raw-storage", lambda h5: _replace(h5, "samples/labels", shape=(6,), dtype=np.int64,
                                                 external=[("/etc/hostname", 0, 48)]), "external files"),
    ("virtual-outside", lambda h5: _replace_virtual(h5), "outside the store's folder"),
]


def _replace_virtual(h5: h5py.File) -> None:
    layout = h5py.VirtualLayout(shape=(6,), dtype=np.int64)
    layout[:] = h5py.VirtualSource("/tmp/elsewhere/other.h5", "labels", shape=(6,))
    del h5["samples/labels"]
    h5.create_virtual_dataset("samples/labels", layout)


@pytest.mark.parametrize("case_id, edit, expected", CASES, ids=[c[0] for c in CASES])
def test_malformed_store_gives_a_clear_error(tmp_path, valid, case_id, edit, expected):
    path = tmp_path / "bad.h5"
    shutil.copy(valid, path)
    with h5py.File(path, "a", libver="latest") as h5:  # latest: attributes over 64 KiB are allowed
        edit(h5)
    result = exercise(path)
    if expected is None:  # tolerated: reads cleanly or a clear error
        assert result == "ok" or result.startswith("error:"), result
    else:
        assert result.startswith("error:") and expected in result, result


def test_valid_store_reads_cleanly(valid):
    assert exercise(valid) == "ok"


def test_truncated_store_at_every_region(tmp_path, valid):
    data = valid.read_bytes()
    for cut in sorted({0, 1, 8, 100, 512, 2048} | set(range(0, len(data), max(len(data) // 40, 1)))):
        path = tmp_path / f"t{cut}.h5"
        path.write_bytes(data[:cut])
        result = exercise(path)
        assert result.startswith("error:"), (cut, result)


def test_damaged_chunk_is_a_store_error_on_read(tmp_path):
    path = write_valid_store(tmp_path / "chunk.h5", size=40)  # 40x40x3 images are deflate-compressed
    with h5py.File(path, "r") as h5:
        assert h5["samples/images"].compression == "gzip"
        info = h5["samples/images"].id.get_chunk_info(2)
    raw = bytearray(path.read_bytes())
    raw[info.byte_offset:info.byte_offset + info.size] = b"\xff" * info.size  # not a deflate stream
    path.write_bytes(bytes(raw))
    st = open_store(path)  # metadata is intact
    st.images([0])
    with pytest.raises(StoreError, match="is damaged: cannot read /samples/images"):
        st.images([2])


@pytest.mark.parametrize("seed", [0, 1])
def test_seeded_random_mutations_never_crash(tmp_path, valid, seed):
    """Byte flips, truncations and overwritten blocks of a valid store, exercised in a subprocess."""
    count = 60
    proc = subprocess.run([sys.executable, str(FUZZLIB), str(valid), str(seed), str(count), str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2])
    lines = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    results = [ln for ln in lines if "result" in ln]
    last = lines[-1] if lines else None
    assert proc.returncode == 0, f"fuzz process died (rc {proc.returncode}) at {last}: {proc.stderr[-2000:]}"
    assert len(results) == count
    bad = [r for r in results if not (r["result"] == "ok" or r["result"].startswith("error:"))]
    assert not bad, bad
    assert sum(r["result"].startswith("error:") for r in results) > count // 4  # the mutations do bite


def _zero_second_heap_object(data: bytes) -> bytes:
    """Zero the header of the second object of the first HDF5 global heap collection (``GCOL``), where
    variable-length strings (our JSON attributes) live: a free-space object of size 0."""
    import struct

    start = data.find(b"GCOL")
    assert start > 0
    first = start + 16
    size = struct.unpack_from("<Q", data, first + 8)[0]
    second = first + 16 + (size + 7) // 8 * 8
    return data[:second] + b"\0" * 16 + data[second + 16:]


def test_zero_size_global_heap_object_is_an_error_not_a_hang(tmp_path, valid, monkeypatch):
    """HDF5 2.0 spins forever on this file while holding the GIL; the guard's child takes the hang."""
    path = tmp_path / "heap.h5"
    path.write_bytes(_zero_second_heap_object(valid.read_bytes()))
    monkeypatch.setenv("DSC_STORE_CHECK_TIMEOUT", "2")
    result = exercise(path)
    assert result.startswith("error:") and "did not finish reading its metadata within 2 s" in result, result


def test_zero_size_global_heap_object_from_the_command_line(tmp_path, valid):
    path = tmp_path / "heap.h5"
    path.write_bytes(_zero_second_heap_object(valid.read_bytes()))
    env = {**os.environ, "DSC_STORE_CHECK_TIMEOUT": "2"}
    proc = subprocess.run([sys.executable, "-m", "dsc", "info", str(path)], capture_output=True, text=True,
                          timeout=60, env=env, cwd=Path(__file__).parents[2])
    assert proc.returncode == 1, proc
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr and "crafted to hang readers" in proc.stderr, proc.stderr
    assert len(lines) <= 2, proc.stderr  # the error and its hint
