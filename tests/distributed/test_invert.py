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


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "ti+lora"])
def test_lora_trains_data_parallel_and_equals_one_process(tiny_sd_path, tmp_path, run_dsc, one_thread, method):
    """Two processes share each global batch (rows rank::2) and sum their gradients: the LoRA (and tokens) and
    the loss per step equal one process's up to float rounding; one manifest, no partial output left. The
    ti+lora case adds prior preservation (class images made by the main process, read by both)."""
    data = square_store(tmp_path / "data.h5", classes=("brake caliper", "gear", "bolt"))
    args = ["--model", "tiny", "--steps", "4", "--resolution", "64", "--batch-size", "3", "--method", method,
            "--lora-rank", "2", *(["--num-vectors", "2", "--prior-preservation", "--prior-images", "2",
                                   "--prior-steps", "2"] if method == "ti+lora" else [])]
    assert run_dsc("invert", str(data), "-o", str(tmp_path / "one"), *args).code == 0
    run_cmd(dsc_cmd("invert", str(data), "-o", "two", *args, nproc=2), tmp_path)
    assert not (tmp_path / "two.partial").exists() and not (tmp_path / "two.lock").exists()
    a = json.loads((tmp_path / "one" / "tokens.json").read_text())
    b = json.loads((tmp_path / "two" / "tokens.json").read_text())
    assert b["complete"] and b["lora"]["classes"] == a["lora"]["classes"] == ["brake caliper", "gear", "bolt"]
    assert b["lora"]["loss"] == pytest.approx(a["lora"]["loss"], rel=1e-4)
    assert b["lora"].get("prior") == a["lora"].get("prior")
    la, lb = (load_file(tmp_path / d / "pytorch_lora_weights.safetensors") for d in ("one", "two"))
    assert la.keys() == lb.keys()
    for k in la:
        assert (la[k] - lb[k]).abs().max() < 1e-4, k
    assert any((la[k] != 0).any() for k in la if "lora_B" in k or "lora.up" in k)  # it trained
    if method == "ti+lora":
        for name, entry in a["classes"].items():
            ta, tb = load_file(tmp_path / "one" / entry["file"]), load_file(tmp_path / "two" / b["classes"][name]["file"])
            assert all((ta[k] - tb[k]).abs().max() < 1e-4 for k in ta), name


def test_lora_refuses_a_batch_smaller_than_the_processes(tiny_sd_path, tmp_path, monkeypatch):
    """Before anything is read or loaded (the data path does not even exist)."""
    from dsc.diffusion.invert import run_invert
    from dsc.errors import ConfigError
    from dsc.settings import InvertSettings

    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(ConfigError, match="--batch-size 2 is smaller than the 4 processes"):
        run_invert(tmp_path / "missing.h5", tmp_path / "tok", InvertSettings(model=str(tiny_sd_path),
                                                                              method="lora", batch_size=2))
    ti = InvertSettings(model=str(tiny_sd_path), batch_size=2)   # textual inversion splits classes instead
    with pytest.raises(Exception) as info:
        run_invert(tmp_path / "missing.h5", tmp_path / "tok", ti)
    assert "processes" not in str(info.value)
