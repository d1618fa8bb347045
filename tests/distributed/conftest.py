"""Helpers for multi-process tests: launch `dsc` under torchrun (what `accelerate launch --multi_gpu` runs)
with 2 CPU processes (gloo), one thread each (the test machine has 2 cores)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.threads import one_torch_thread


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env() -> dict[str, str]:
    """The test's environment without launcher variables, one thread per process."""
    drop = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT",
            "TORCHELASTIC", "ACCELERATE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["OMP_NUM_THREADS"] = "1"
    return env


def dsc_cmd(*args: str, nproc: int = 1) -> list[str]:
    """`python -m dsc ARGS`, under torchrun with ``nproc`` processes when ``nproc > 1``."""
    if nproc == 1:
        return [sys.executable, "-m", "dsc", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-port",
            str(free_port()), "-m", "dsc", *args]


def run_cmd(cmd: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="session")
def tiny_sd(dsc_cache) -> Path:
    """The tiny diffusion model, built once before processes start (so they do not race to build it)."""
    from dsc.diffusion.tiny import tiny_model_path

    return tiny_model_path(dsc_cache)


@pytest.fixture
def one_thread():
    with one_torch_thread():
        yield
