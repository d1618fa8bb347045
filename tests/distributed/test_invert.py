"""`dsc invert` with 2 processes: classes split over processes; the same tokens and manifest as one process."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from dsc.testing import dsc_cmd, run_cmd, square_store

ARGS = ["--model", "tiny", "--steps", "3", "--resolution", "64", "--batch-size", "2", "--num-vectors", "2"]


@pytest.mark.slow
def test_two_processes_equal_one(tiny_sd_path, tmp_path, run_dsc, one_thread):
    data = square_store(tmp_path / "data.h5", classes=("brake caliper", "gear", "bolt"))
    assert run_dsc("invert", str(data), "-o", str(tmp_path / "one"), *ARGS).code == 0  # in this process
    two = run_cmd(dsc_cmd("invert", str(data), "-o", "two", *ARGS, nproc=2), tmp_path)
    assert not (tmp_path / "two.partial").exists() and not (tmp_path / "two.lock").exists()
    a = json.loads((tmp_path / "one" / "tokens.json").read_text())
    b = json.loads((tmp_path / "two" / "tokens.json").read_text())
    assert b["complete"] and list(b["classes"]) == list(a["classes"]) == ["brake caliper", "gear", "bolt"]
    for name, entry in a["classes"].items():
        other = b["classes"][name]
        assert other["sha256"] == entry["sha256"] and other["loss"] == entry["loss"], name  # identical tokens
        ta, tb = load_file(tmp_path / "one" / entry["file"]), load_file(tmp_path / "two" / other["file"])
        assert all((ta[k] == tb[k]).all() for k in ta)
    assert two.stdout.count("brake caliper") <= 2  # the main process renders the table once
