"""`accelerate launch` runs `dsc baseline` in 2 CPU processes; the checkpoint keeps each process's RNG."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from dsc.testing import free_port, pattern_store, run_cmd


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None,
                    reason="accelerate CLI not installed")
def test_accelerate_launch_baseline(tmp_path):
    data = pattern_store(tmp_path / "data.h5")
    accelerate = str(Path(sys.executable).parent / "accelerate")
    # --multi_gpu starts torchrun workers; without CUDA dsc uses gloo on the CPU (`--cpu` would start one process)
    proc = run_cmd([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                    "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
                    "-m", "dsc", "baseline", str(data), "-o", "run", "--backbone", "timm:test_resnet",
                    "--image-size", "16", "--batch-size", "12", "--epochs", "2"], tmp_path)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "complete" and info["batch"]["processes"] == 2
    assert proc.stdout.count("complete") == 1
    rng = load_file(tmp_path / "run" / "checkpoints" / "last.optim.safetensors")
    assert {"rng.augment0", "rng.augment1"} <= set(rng)  # each process resumes its own augmentation stream
    assert not (rng["rng.augment0"] == rng["rng.augment1"]).all()
    assert not (tmp_path / "run.lock").exists()
