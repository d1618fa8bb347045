"""`dsc probe` with 2 processes: the embedding pass is sharded and gathered; the same features and metrics."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from dsc.store import open_store
from dsc.testing import dsc_cmd, pattern_store, run_cmd

PROBE = ["--epochs", "5", "--eval-batch-size", "5", "--no-corruptions"]


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path, run_dsc, one_thread):
    data = pattern_store(tmp_path / "data.h5")
    res = run_dsc("pretrain", str(data), "-o", str(tmp_path / "one"), "--backbone", "timm:test_resnet",
                  "--image-size", "16", "--batch-size", "12", "--epochs", "1")
    assert res.code == 0, res.err
    shutil.copytree(tmp_path / "one", tmp_path / "two")
    assert run_dsc("probe", str(tmp_path / "one"), *PROBE).code == 0
    two = run_cmd(dsc_cmd("probe", "two", *PROBE, nproc=2), tmp_path)
    assert two.stdout.count("metrics:") == 1  # the main process reports
    a, b = (open_store(tmp_path / d / "embeddings.h5") for d in ("one", "two"))
    assert len(a) == len(b) > 10
    np.testing.assert_array_equal(a.column("features"), b.column("features"))
    np.testing.assert_array_equal(a.column("labels"), b.column("labels"))
    a.close(), b.close()
    ma, mb = (json.loads((tmp_path / d / "probe" / "metrics.json").read_text()) for d in ("one", "two"))
    assert ma["test"] == mb["test"] and ma["val"] == mb["val"]
