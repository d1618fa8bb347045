"""Deterministic malformed-input helpers for the fuzz tests: a valid store, byte mutators, and an
``exercise`` that touches everything a command reads from a store.

Run as a script (``python fuzzlib.py VALID.h5 SEED N``) it mutates the valid file N times and exercises
each result in this process, printing one JSON line per case; the tests run it in a subprocess so that a
crash of the HDF5 C library would be caught and reported instead of killing pytest.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
from pathlib import Path

import numpy as np

CASE_SECONDS = 20


def write_valid_store(path: Path, n: int = 6, size: int = 8) -> Path:
    """A small complete data store with every standard subset column (images, masks, strings, holdout)."""
    from dsc.store import StoreWriter

    rng = np.random.default_rng(0)
    with StoreWriter(path, kind="data", attrs={"settings": {"resolution": size}, "sources": {"a": "default"},
                                               "class_info": [{"name": "a"}, {"name": "b"}]}) as w:
        w.set_classes(["a", "b"], holdout_names=["z"])
        w.create_column("images", (size, size, 3), np.uint8, chunk_rows=1)
        w.create_column("masks", (size, size), np.uint8, chunk_rows=1)
        for name, dtype in (("labels", np.int64), ("split", str), ("group", str), ("holdout", bool),
                            ("holdout_label", np.int64)):
            w.create_column(name, (), dtype)
        w.append(images=rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8),
                 masks=(rng.random((n, size, size)) > 0.5).astype(np.uint8) * 255,
                 labels=np.array([0, 1] * (n // 2)), split=(["train", "val", "test"] * n)[:n],
                 group=[f"g{i}" for i in range(n)], holdout=np.zeros(n, bool), holdout_label=np.full(n, -1))
        w.finalize()
    return path


def exercise(path: Path) -> str:
    """Open a store and read what commands read. Returns "ok" or "error: <message>" for a DscError;
    any other exception propagates (that is the bug the fuzz tests look for)."""
    from dsc.errors import DscError
    from dsc.store import open_store

    try:
        st = open_store(path)
        n = len(st)
        _ = (st.classes, st.holdout_classes, st.split, st.holdout, st.fingerprint, st.image_shape)
        st.indices("train")
        st.summary()
        for name in st.columns:
            if name in ("images", "masks"):
                if n:
                    st.read(name, [n - 1, 0])
                    st.read(name, slice(0, min(n, 3)))
            else:
                st.column(name)
        if "labels" in st.columns:
            _ = st.labels
        if st.has("images") and n:
            st.images([0])
            st.load_images(np.arange(min(n, 4)))
        st.class_array("holdout_names")
        st.close()
    except DscError as exc:
        assert "\n" not in str(exc), f"multi-line error: {exc!r}"
        return f"error: {exc}"
    return "ok"


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One seeded mutation: truncate, flip bytes, overwrite a block, or zero a block."""
    op = rng.choice(["truncate", "flip", "block", "zero"])
    b = bytearray(data)
    if op == "truncate":
        cut = rng.randrange(0, len(b))
        return f"truncate@{cut}", bytes(b[:cut])
    if op == "flip":
        where = sorted(rng.randrange(0, len(b)) for _ in range(rng.randint(1, 16)))
        for i in where:
            b[i] ^= 1 << rng.randrange(8)
        return f"flip@{where[:4]}", bytes(b)
    start = rng.randrange(0, len(b))
    length = rng.randint(1, 256)
    fill = bytes(rng.randrange(256) for _ in range(length)) if op == "block" else b"\0" * length
    b[start:start + length] = fill[: len(b) - start]
    return f"{op}@{start}+{length}", bytes(b)


def _timeout(_signum, _frame):
    raise TimeoutError(f"case took more than {CASE_SECONDS} s")


def main(valid: str, seed: int, count: int, workdir: str) -> None:
    os.environ.setdefault("DSC_STORE_CHECK_TIMEOUT", "5")  # the store guard reports a hang before the alarm
    data = Path(valid).read_bytes()
    rng = random.Random(seed)
    signal.signal(signal.SIGALRM, _timeout)
    for i in range(count):
        name, blob = mutate(data, rng)
        path = Path(workdir) / f"case{i}.h5"
        path.write_bytes(blob)
        print(json.dumps({"case": i, "mutation": name, "status": "started"}), flush=True)
        signal.alarm(CASE_SECONDS)
        try:
            result = exercise(path)
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
            result = f"UNCAUGHT {type(exc).__name__}: {exc}"
        finally:
            signal.alarm(0)
        print(json.dumps({"case": i, "mutation": name, "result": result}), flush=True)
        path.unlink()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
