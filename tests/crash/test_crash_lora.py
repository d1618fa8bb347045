"""SIGKILL `dsc invert --method ti+lora` after its first checkpoint, resume, compare with an uninterrupted run."""

from __future__ import annotations

import json

import pytest

from dsc.testing import dsc_cmd, square_store

from .conftest import SEED, assert_nothing_corrupt, kill_at, same_tensors

pytestmark = pytest.mark.slow

# 150 steps: the first checkpoint is written at step 100 (lora.CHECKPOINT_EVERY), so the kill lands after it
LORA = ["--model", "tiny", "--method", "ti+lora", "--steps", "150", "--resolution", "64", "--batch-size", "2",
        "--num-vectors", "2", "--lora-lr", "1e-3"]


def test_invert_lora_killed_and_resumed_equals_uninterrupted(tiny_sd_path, tmp_path, run_dsc, one_thread,
                                                             rng) -> None:
    """In-process runs use one torch thread like the killed subprocess, so the float sums match bit for bit."""
    data = square_store(tmp_path / "data.h5")
    assert run_dsc("invert", str(data), "-o", str(tmp_path / "ref"), *LORA).code == 0
    checkpoint = tmp_path / "tok.partial" / "checkpoints" / "lora.json"
    killed = kill_at(dsc_cmd("invert", str(data), "-o", "tok", *LORA), tmp_path, checkpoint.is_file,
                     delay=float(rng.uniform(0, 0.5)))
    assert_nothing_corrupt(tmp_path)
    if killed:
        res = run_dsc("invert", str(data), "-o", str(tmp_path / "tok"), *LORA, "--resume")
        assert res.code == 0, res.err
    ref = json.loads((tmp_path / "ref" / "tokens.json").read_text())
    got = json.loads((tmp_path / "tok" / "tokens.json").read_text())
    assert got["complete"] and got["lora"]["loss"] == ref["lora"]["loss"], f"seed {SEED}"
    assert got["lora"]["sha256"] == ref["lora"]["sha256"]
    assert not killed or got["lora"]["resumed_from"] == 100
    same_tensors(tmp_path / "ref" / "pytorch_lora_weights.safetensors", tmp_path / "tok" / "pytorch_lora_weights.safetensors")
    for name, entry in ref["classes"].items():
        same_tensors(tmp_path / "ref" / entry["file"], tmp_path / "tok" / got["classes"][name]["file"])
    assert not (tmp_path / "tok.partial").exists() and not (tmp_path / "tok" / "checkpoints").exists()
