"""benchmarks/bench_memory.py: the peak-RSS measurement of a fresh subprocess sees what the child allocated,
and the synthetic inputs it builds are what the commands expect."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.benchmarks import load_script


def test_peak_rss_of_a_child_reflects_its_allocation(tmp_path: Path) -> None:
    bm = load_script("bench_memory")
    small = bm.run_measured([sys.executable, "-c", "pass"], dict(os.environ), tmp_path)
    big = bm.run_measured([sys.executable, "-c", "x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096])"],
                          dict(os.environ), tmp_path)
    assert big["peak_rss_mb"] - small["peak_rss_mb"] > 250
    with pytest.raises(RuntimeError, match="failed"):
        bm.run_measured([sys.executable, "-c", "raise SystemExit(2)"], dict(os.environ), tmp_path)


def test_synthetic_inputs(tmp_path: Path) -> None:
    bm = load_script("bench_memory")
    from dsc.store import open_store

    store = open_store(bm.make_store(tmp_path / "d.h5", 10, 3, 32))
    assert len(store) == 13 and list(store.split).count("val") == 3
    root = bm.make_folder(tmp_path / "photos", 9, 32)
    assert len(list(root.rglob("*.png"))) == 9 and len(list(root.iterdir())) == 4
