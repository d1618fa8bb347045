"""diff-mix and text-to-image are resumable like every strategy: an interrupted (or SIGKILLed) run resumed equals
the uninterrupted one image for image; other batch sizes make the same plan; changed options are named; two
processes write the store one process writes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dsc.augment import run_augment
from dsc.errors import MismatchError
from dsc.settings import AugmentSettings
from dsc.store import Store
from dsc.testing import MASKED_RES, kill_augment_after_first_batch

from .test_augment_resume import _same as same

STRATEGIES = {"diff-mix": dict(strength=[0.5, 0.9]), "text-to-image": dict(per_class=4)}
META = ("source_index", "variant", "seed", "strength", "labels", "other_label", "mix_weight", "prompt")


def _settings(strategy: str, **kw) -> AugmentSettings:
    base = dict(model="tiny", strategy=strategy, resolution=MASKED_RES, steps=4, per_image=2, batch_size=3,
                **STRATEGIES[strategy])
    return AugmentSettings(**{**base, **kw})


def _same(a: Path, b: Path, exact: bool = True) -> None:
    same(a, b, exact, columns=META)


@pytest.fixture(scope="module")
def full_runs(data_h5, tmp_path_factory) -> dict[str, Path]:
    out = {}
    for strategy in STRATEGIES:
        out[strategy] = tmp_path_factory.mktemp("full") / f"{strategy}.h5"
        run_augment(data_h5, out[strategy], _settings(strategy), show_progress=False)
    return out


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_resume_after_interrupt_equals_uninterrupted_run(data_h5, full_runs, tmp_path, strategy):
    out = tmp_path / "aug.h5"

    def crash(done: int, total: int) -> None:
        if done >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_augment(data_h5, out, _settings(strategy), show_progress=False, on_batch=crash)
    assert not out.exists()
    changed = {"diff-mix": (dict(gamma=2.0), "gamma: 0.8 -> 2.0"),
               "text-to-image": (dict(per_class=5), "per_class: 4 -> 5")}[strategy]
    with pytest.raises(MismatchError, match=changed[1]):
        run_augment(data_h5, out, _settings(strategy, **changed[0]), resume=True, show_progress=False)
    result = run_augment(data_h5, out, _settings(strategy), resume=True, show_progress=False)
    assert result.resumed and result.n_generated == result.n_images - 6
    _same(full_runs[strategy], out)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_batch_size_does_not_change_the_images(data_h5, full_runs, tmp_path, strategy):
    run_augment(data_h5, tmp_path / "b5.h5", _settings(strategy, batch_size=5), show_progress=False)
    _same(full_runs[strategy], tmp_path / "b5.h5", exact=False)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_resume_after_kill_9(data_h5, full_runs, tmp_path, dsc_cache, strategy):
    out = tmp_path / "k.h5"
    extra = ["--strength", "0.5,0.9"] if strategy == "diff-mix" else ["--per-class", "4"]
    cmd = [sys.executable, "-m", "dsc", "augment", str(data_h5), "--model", "tiny", "--strategy", strategy,
           "--resolution", str(MASKED_RES), "--steps", "4", "--per-image", "2", "--batch-size", "3", *extra,
           "-o", str(out)]
    if not kill_augment_after_first_batch(cmd, out, tmp_path, dsc_cache):
        pytest.skip("the run finished before it could be killed")
    run_augment(data_h5, out, _settings(strategy), resume=True, show_progress=False)
    _same(full_runs[strategy], out)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_two_processes_equal_one(tiny_sd_path, data_h5, tmp_path, run_dsc, strategy):
    from dsc.testing import dsc_cmd, run_cmd

    args = ["--model", "tiny", "--strategy", strategy, "--resolution", str(MASKED_RES), "--steps", "3",
            "--per-image", "2", "--batch-size", "2",
            *(["--strength", "0.5,0.9"] if strategy == "diff-mix" else ["--per-class", "3"])]
    assert run_dsc("augment", data_h5, "-o", tmp_path / "one.h5", *args).code == 0
    two = run_cmd(dsc_cmd("augment", str(data_h5), "-o", "two.h5", *args, nproc=2), tmp_path)
    assert two.stdout.count("wrote two.h5") == 1
    a, b = Store(tmp_path / "one.h5"), Store(tmp_path / "two.h5")
    np.testing.assert_array_equal(a.images(slice(None)), b.images(slice(None)))
    for col in META:
        np.testing.assert_array_equal(a.column(col), b.column(col))
    assert a.attrs["plan_hash"] == b.attrs["plan_hash"]
