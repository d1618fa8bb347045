"""`dsc augment` with 2 processes writes exactly the store one process writes."""

from __future__ import annotations

import numpy as np
import pytest

from dsc.store import open_store
from dsc.testing import dsc_cmd, masked_store, run_cmd

ARGS = ["--model", "tiny", "--strategy", "real-guidance", "--resolution", "32", "--steps", "3", "--per-image",
        "2", "--batch-size", "2", "--strength", "0.5,1.0"]


@pytest.mark.slow
def test_two_processes_equal_one(tiny_sd_path, tmp_path, run_dsc, one_thread):
    data = masked_store(tmp_path / "data.h5")
    assert run_dsc("augment", str(data), "-o", str(tmp_path / "one.h5"), *ARGS).code == 0  # in this process
    two = run_cmd(dsc_cmd("augment", str(data), "-o", "two.h5", *ARGS, nproc=2), tmp_path)
    assert two.stdout.count("wrote two.h5") == 1  # only the main process reports
    a, b = open_store(tmp_path / "one.h5"), open_store(tmp_path / "two.h5")
    assert len(b) == len(a) == 12
    np.testing.assert_array_equal(a.images(slice(None)), b.images(slice(None)))  # bit-identical
    for col in ("labels", "source_index", "variant", "seed", "strength", "prompt", "other_label"):
        np.testing.assert_array_equal(a.column(col), b.column(col))
    assert b.attrs["plan_hash"] == a.attrs["plan_hash"]
    assert not (tmp_path / "two.h5.shards").exists() and not (tmp_path / "two.h5.shards.lock").exists()
    a.close(), b.close()
