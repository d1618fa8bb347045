"""SIGKILL a study while it builds a synthetic store of its own (a stage), rerun it, and compare the store
with one an uninterrupted study built: the rerun resumes the stage from its shards."""

from __future__ import annotations

import numpy as np
import pytest

from dsc.testing import dsc_cmd
from tests.crash.conftest import SEED, assert_nothing_corrupt, kill_at

pytestmark = pytest.mark.slow

STUDY = """
[study]
data = "{name}-data.h5"
synthetic = ["normal"]
output = "{name}"
seeds = [0]
methods = ["ce"]
variants = ["none", "normal"]

[subset]
dataset = "toyparts"
classes = 3
resolution = 32
options = {{objects_per_class = 8}}

[invert]
model = "tiny"
steps = 2
resolution = 32
batch_size = 2
num_vectors = 1

[augment.normal]
per_image = 4
steps = 3
batch_size = 2
strength = [0.5, 1.0]

[train]
backbone = "timm:test_resnet"
image_size = 16
epochs = 1
batch_size = 12

[baseline]
corruptions = false
"""


def test_a_killed_stage_is_resumed_by_the_next_study(tiny_sd_path, tmp_path, run_dsc, one_thread, rng, monkeypatch):
    import json

    from dsc.store import open_store

    monkeypatch.chdir(tmp_path)  # the study files' relative paths

    for name in ("ref", "out"):
        (tmp_path / f"{name}.toml").write_text(STUDY.format(name=name))
    assert run_dsc("study", str(tmp_path / "ref.toml"), "--no-report").code == 0
    shards = tmp_path / "out" / "stages" / "normal-seed0.h5.shards"
    killed = kill_at(dsc_cmd("study", "out.toml", "--no-report"), tmp_path,
                     lambda: any(shards.glob("rows-*.npz")), delay=float(rng.uniform(0, 0.5)))
    assert_nothing_corrupt(tmp_path)
    if killed and shards.exists():
        dry = run_dsc("study", str(tmp_path / "out.toml"), "--dry-run", "--json")
        stages = {s["stage"].rsplit("/", 1)[-1]: s for s in json.loads(dry.out)["stages"]}
        assert stages["normal-seed0.h5"]["action"] == "resume", stages
    res = run_dsc("study", str(tmp_path / "out.toml"), "--no-report")
    assert res.code == 0, res.err
    assert_nothing_corrupt(tmp_path)
    with open_store(tmp_path / "ref" / "stages" / "normal-seed0.h5") as a, \
            open_store(tmp_path / "out" / "stages" / "normal-seed0.h5") as b:
        np.testing.assert_array_equal(a.images(slice(None)), b.images(slice(None)), err_msg=f"seed {SEED}")
        for col in ("seed", "source_index", "variant", "strength", "prompt"):
            np.testing.assert_array_equal(a.column(col), b.column(col))
    assert not shards.exists()
    assert (tmp_path / "out" / "ce-normal-s0" / "metrics.json").is_file()
