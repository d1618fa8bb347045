"""The training image size defaults to the store's resolution (not 224 px), and `--threads` reaches torch."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from dsc.testing import pattern_store
from dsc.train.image_size import UPSCALE_WARNING, native_size, resolve_image_size

TINY = ("--backbone", "timm:test_resnet", "--batch-size", "8", "--epochs", "1", "--lr", "0.05")


def _native(size: int | None):
    return lambda: size


@pytest.mark.parametrize(("requested", "store", "native", "want"), [
    (None, 64, 224, 64),     # a small store trains at its own resolution
    (None, 512, 224, 224),   # a store made for Stable Diffusion trains at the backbone's size
    (None, 300, None, 300),  # native size unknown: the store's
    (96, 64, 224, 96),       # explicit: as given
])
def test_resolve(requested: int | None, store: int, native: int | None, want: int) -> None:
    size, note = resolve_image_size(requested, store, _native(native))
    assert size == want
    assert (note == "") == (requested is not None)


def test_explicit_upscale_over_2x_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        resolve_image_size(int(64 * UPSCALE_WARNING), 64, _native(224))
    assert "upscales" not in caplog.text  # exactly 2x: no warning
    with caplog.at_level(logging.WARNING):
        resolve_image_size(224, 64, _native(224), store_name="data.h5")
    assert "--image-size 224 upscales the 64 px images of data.h5 3.5x" in caplog.text


def test_native_size_from_the_backbone() -> None:
    assert native_size("timm:resnet18") == 224
    assert native_size("timm:test_resnet") == 160


def test_cli_pretrain_defaults_to_the_store_resolution_and_probe_follows(tmp_path: Path, run_dsc) -> None:
    data = pattern_store(tmp_path / "data32.h5", per_class=(6, 2, 2), size=32)
    res = run_dsc("pretrain", data, *TINY, "-o", "run")
    assert res.code == 0, res
    assert "upscales" not in res.err
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["settings"]["image_size"] == 32  # was 224: a 7x upscale of every image
    assert info["sources"]["image_size"] == "default: the store's resolution 32 px"
    probe = run_dsc("probe", "run", "--epochs", "2", "--no-corruptions", "--json")
    assert probe.code == 0, probe
    from dsc.store import open_store

    assert open_store(tmp_path / "run" / "embeddings.h5").attrs["extra"]["image_size"] == 32


def test_cli_explicit_upscale_warns_and_is_recorded(tmp_path: Path, run_dsc) -> None:
    data = pattern_store(tmp_path / "data16.h5", per_class=(6, 2, 2), size=16)
    res = run_dsc("baseline", data, *TINY, "--image-size", "40", "--no-corruptions", "-o", "run")
    assert res.code == 0, res
    assert "--image-size 40 upscales the 16 px images" in res.err
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["settings"]["image_size"] == 40
    assert info["sources"]["image_size"] == "command line"


def test_cli_threads_reaches_torch(tmp_path: Path, run_dsc, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # restored afterwards: --threads writes them
        monkeypatch.delenv(var, raising=False)

    data = pattern_store(tmp_path / "data.h5", per_class=(6, 2, 2))
    assert torch.get_num_threads() == 1  # the tests' one thread (dsc.threads.one_torch_thread)
    res = run_dsc("--threads", "2", "pretrain", data, *TINY, "-o", "run")
    assert res.code == 0, res
    threads = json.loads((tmp_path / "run" / "run.json").read_text())["threads"]
    assert threads["source"] == "--threads" and threads["intra_op"] == 2
    assert threads["torch_intra_op"] == 2  # read while the run started
    assert run_dsc("pretrain", data, *TINY, "-o", "run2").code == 0
    caller = json.loads((tmp_path / "run2" / "run.json").read_text())["threads"]
    assert caller["source"] == "caller"  # torch loaded by the caller (this test): its setting stays


def test_study_plans_the_store_resolution_and_skips_the_finished_run(tmp_path: Path) -> None:
    from dsc.study import execute, load_study, plan

    data = pattern_store(tmp_path / "data.h5", per_class=(6, 2, 2), size=16)
    study_file = tmp_path / "study.toml"
    study_file.write_text(f"""
[study]
data = "{data}"
output = "{tmp_path / 'out'}"
seeds = [0]
methods = ["ce"]
variants = ["none"]

[train]
backbone = "timm:test_resnet"
epochs = 1
batch_size = 8

[baseline]
corruptions = false
""")
    study = plan(load_study(study_file))
    (run,) = study.runs
    assert run.settings.image_size == 16 and run.sources["image_size"] == "default: the store's resolution 16 px"
    execute(study)
    assert json.loads((run.path / "run.json").read_text())["settings"]["image_size"] == 16
    (again,) = plan(load_study(study_file)).runs
    assert again.action == "skip"  # the recorded settings match the plan
