"""SIGKILL each long command at a seeded random moment, resume it, and compare with an uninterrupted run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dsc.testing import dsc_cmd
from tests.crash.conftest import SEED, assert_nothing_corrupt, kill_at, metrics_lines, same_runs, same_tensors

pytestmark = pytest.mark.slow

AUGMENT = ["--model", "tiny", "--strategy", "real-guidance", "--resolution", "32", "--steps", "3", "--per-image",
           "2", "--batch-size", "2", "--strength", "0.5,1.0"]
INVERT = ["--model", "tiny", "--steps", "8", "--resolution", "64", "--batch-size", "2", "--num-vectors", "2"]
TRAIN = ["--backbone", "timm:test_resnet", "--image-size", "16", "--batch-size", "12", "--epochs", "6"]


def test_augment(tiny_sd_path, tmp_path, run_dsc, one_thread, rng):
    from dsc.store import open_store
    from dsc.testing import masked_store

    data = masked_store(tmp_path / "data.h5")
    assert run_dsc("augment", str(data), "-o", str(tmp_path / "ref.h5"), *AUGMENT).code == 0
    shards = tmp_path / "aug.h5.shards"
    killed = kill_at(dsc_cmd("augment", str(data), "-o", "aug.h5", *AUGMENT), tmp_path,
                     lambda: any(shards.glob("rows-*.npz")), delay=float(rng.uniform(0, 0.6)))
    assert_nothing_corrupt(tmp_path)
    if killed and shards.exists():  # (a kill after the shards were removed finds the store complete)
        res = run_dsc("augment", str(data), "-o", str(tmp_path / "aug.h5"), *AUGMENT, "--resume")
        assert res.code == 0, res.err
    assert_nothing_corrupt(tmp_path)
    a, b = open_store(tmp_path / "ref.h5"), open_store(tmp_path / "aug.h5")
    np.testing.assert_array_equal(a.images(slice(None)), b.images(slice(None)), err_msg=f"seed {SEED}")
    for col in ("seed", "source_index", "variant", "strength", "prompt"):
        np.testing.assert_array_equal(a.column(col), b.column(col))
    a.close(), b.close()
    assert not shards.exists() and not (tmp_path / "aug.h5.shards.lock").exists()


def test_invert(tiny_sd_path, tmp_path, run_dsc, one_thread, rng):
    from dsc.testing import square_store

    data = square_store(tmp_path / "data.h5", classes=("brake caliper", "gear", "bolt"))
    assert run_dsc("invert", str(data), "-o", str(tmp_path / "ref"), *INVERT).code == 0
    partial = tmp_path / "tok.partial"
    killed = kill_at(dsc_cmd("invert", str(data), "-o", "tok", *INVERT), tmp_path,
                     lambda: any(partial.glob("*.safetensors")), delay=float(rng.uniform(0, 1.0)))
    assert_nothing_corrupt(tmp_path)
    if killed:
        res = run_dsc("invert", str(data), "-o", str(tmp_path / "tok"), *INVERT, "--resume")
        assert res.code == 0, res.err
    assert_nothing_corrupt(tmp_path)
    ref = json.loads((tmp_path / "ref" / "tokens.json").read_text())
    got = json.loads((tmp_path / "tok" / "tokens.json").read_text())
    assert got["complete"] and list(got["classes"]) == list(ref["classes"])
    for name, entry in ref["classes"].items():
        assert got["classes"][name]["loss"] == entry["loss"], f"{name} (seed {SEED})"
        same_tensors(tmp_path / "ref" / entry["file"], tmp_path / "tok" / got["classes"][name]["file"])
    assert not partial.exists() and not (tmp_path / "tok.lock").exists()


@pytest.mark.parametrize("command", ["pretrain", "baseline"])
def test_training(command, tmp_path, run_dsc, one_thread, rng):
    from dsc.testing import pattern_store

    data = pattern_store(tmp_path / "data.h5")
    assert run_dsc(command, str(data), "-o", str(tmp_path / "ref"), *TRAIN).code == 0
    run = tmp_path / "run"
    after = int(rng.integers(1, 5))  # kill after this many epochs are reported, at a random moment after
    killed = kill_at(dsc_cmd(command, str(data), "-o", "run", *TRAIN), tmp_path,
                     lambda: metrics_lines(run) >= after, delay=float(rng.uniform(0, 0.3)))
    assert_nothing_corrupt(tmp_path)
    if killed:  # killed while running (or, rarely, while exiting: then --resume has nothing left to do)
        assert json.loads((run / "run.json").read_text())["status"] in ("running", "complete")
        res = run_dsc(command, str(data), "-o", str(run), *TRAIN, "--resume")
        assert res.code == 0, res.err
    assert_nothing_corrupt(tmp_path)
    for name in ("last", "best"):
        same_tensors(tmp_path / "ref" / "checkpoints" / f"{name}.safetensors",
                     run / "checkpoints" / f"{name}.safetensors")
    drop = ("time_s", "images_per_s", "data_wait_share")
    rows = [[{k: v for k, v in json.loads(line).items() if k not in drop}
             for line in (d / "metrics.jsonl").read_text().splitlines()] for d in (tmp_path / "ref", run)]
    assert rows[0] == rows[1], f"seed {SEED}"
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    assert not (tmp_path / "run.lock").exists()


STUDY = """
[study]
data = "data.h5"
output = "{output}"
seeds = [0]
methods = ["ce", "supcon"]
variants = ["none"]

[train]
backbone = "timm:test_resnet"
image_size = 16
epochs = 4
batch_size = 12
warmup_epochs = 0

[probe]
epochs = 5

[report]
per_class = false
"""


def test_study(tmp_path, run_dsc, one_thread, rng):
    from dsc.testing import pattern_store

    pattern_store(tmp_path / "data.h5")
    for name in ("ref", "out"):
        (tmp_path / f"{name}.toml").write_text(STUDY.format(output=name))
    assert run_dsc("study", str(tmp_path / "ref.toml")).code == 0
    runs = sorted(p.name for p in (tmp_path / "ref").iterdir() if (p / "run.json").is_file())
    assert len(runs) == 2
    # Kill at a random progress point that always leaves work to do (an epoch line of either run while
    # epochs remain), plus a short random delay: a fast, idle machine must not finish before the kill.
    points = [(run, k) for run in runs for k in (1, 2, 3)]
    run, k = points[int(rng.integers(len(points)))]
    killed = kill_at(dsc_cmd("study", "out.toml"), tmp_path,
                     lambda: metrics_lines(tmp_path / "out" / run) >= k, delay=float(rng.uniform(0, 0.2)))
    assert_nothing_corrupt(tmp_path)
    assert killed, "the study finished before the kill"
    res = run_dsc("study", str(tmp_path / "out.toml"))
    assert res.code == 0, res.err
    assert_nothing_corrupt(tmp_path)
    same_runs(tmp_path / "ref", tmp_path / "out", runs)
