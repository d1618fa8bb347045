"""The crash-kill harness: start a command in a subprocess, SIGKILL it at a seeded random moment, check that
nothing at a final path is corrupt, resume, and compare with an uninterrupted run.

``DSC_CRASH_SEED`` (default 0) picks the kill moments; failures name it so a kill can be replayed;
``DSC_CRASH_VERBOSE=1`` (with ``pytest -s``) prints whether each kill hit a running process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dsc.testing import clean_env

SEED = int(os.environ.get("DSC_CRASH_SEED", "0"))
VERBOSE = bool(os.environ.get("DSC_CRASH_VERBOSE"))  # print where each kill landed (pytest -s)


@pytest.fixture
def rng(request) -> np.random.Generator:
    """One seeded generator per test (the seed and the test name fix every kill moment)."""
    return np.random.default_rng([SEED, sum(map(ord, request.node.name))])


def kill_at(cmd: list[str], cwd: Path, marker: Callable[[], bool], delay: float,
            timeout: float = 120) -> bool:
    """Run ``cmd``; once ``marker()`` is true wait ``delay`` seconds and SIGKILL it. True when the kill hit a
    running process (False: it had already finished, which the caller must handle)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    end = time.monotonic() + timeout
    try:
        while not marker():
            if proc.poll() is not None:
                err = proc.stderr.read() if proc.stderr else ""
                assert proc.returncode == 0, f"{' '.join(cmd)} failed before the kill: {err[-3000:]}"
                return False
            assert time.monotonic() < end, f"no progress marker from {' '.join(cmd)} (seed {SEED})"
            time.sleep(0.02)
        time.sleep(delay)
        alive = proc.poll() is None
        if VERBOSE:
            sys.__stderr__.write(f"kill {'hit' if alive else 'missed'} {cmd[cmd.index('dsc') + 1]}\n")
        if alive:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return alive
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def assert_nothing_corrupt(root: Path) -> None:
    """Every store at a final path opens, every JSON file parses, every JSON-lines line parses.

    Work in progress (``*.partial``, hidden temporary files, ``*.next`` staged files) is not a final path.
    """
    from dsc.store import open_store

    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or any(p.startswith(".") or p.endswith((".partial", ".next", ".tmp"))
                                     for p in rel.parts):
            continue
        if path.suffix == ".h5":
            open_store(path).close()
        elif path.suffix == ".json" or path.name.endswith(".lock"):
            json.loads(path.read_text())
        elif path.suffix == ".jsonl":
            for line in path.read_text().splitlines():
                json.loads(line)
        elif path.suffix == ".safetensors":
            from safetensors.torch import load_file

            load_file(path)


def same_tensors(a: Path, b: Path) -> None:
    from safetensors.torch import load_file

    ta, tb = load_file(a), load_file(b)
    assert sorted(ta) == sorted(tb)
    for k in ta:
        assert (ta[k] == tb[k]).all(), f"{k} differs between {a} and {b} (seed {SEED})"


def same_runs(ref: Path, out: Path, runs: list[str]) -> None:
    """Each run of ``out`` ended as the uninterrupted one of ``ref``: the same last and best checkpoints, the
    same epochs logged (none twice), complete with the same best epoch."""
    for name in runs:
        for ckpt in ("last", "best"):
            same_tensors(ref / name / "checkpoints" / f"{ckpt}.safetensors",
                         out / name / "checkpoints" / f"{ckpt}.safetensors")
        assert metrics_lines(out / name) == metrics_lines(ref / name), f"{name}: epochs logged (seed {SEED})"
        want = json.loads((ref / name / "run.json").read_text())
        got = json.loads((out / name / "run.json").read_text())
        assert got["status"] == "complete" and got["best_epoch"] == want["best_epoch"]


def metrics_lines(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0
