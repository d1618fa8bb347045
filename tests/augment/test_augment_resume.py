"""Reproducibility and resume: images depend on (seed, source, variant) only, never on batching or crashes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dsc.augment import image_seed, run_augment
from dsc.errors import MismatchError, OutputExistsError
from dsc.settings import AugmentSettings
from dsc.store import Store
from dsc.testing import MASKED_RES, kill_augment_after_first_batch

META = ("source_index", "variant", "seed", "strength", "labels", "prompt")


def _settings(**kw) -> AugmentSettings:
    base = dict(model="tiny", strategy="real-guidance", resolution=MASKED_RES, steps=4, per_image=2, batch_size=3,
                strength=[0.25, 0.5, 1.0])
    return AugmentSettings(**{**base, **kw})


def _same(a: Path, b: Path, exact: bool = True, columns: tuple[str, ...] = META) -> None:
    sa, sb = Store(a), Store(b)
    for col in columns:
        np.testing.assert_array_equal(sa.column(col), sb.column(col))
    ia, ib = sa.images(slice(None)), sb.images(slice(None))
    if exact:
        np.testing.assert_array_equal(ia, ib)
    else:  # other batch compositions: float rounding may move a pixel by one level
        assert np.abs(ia.astype(int) - ib).max() <= 1


@pytest.fixture(scope="module")
def full_run(data_h5, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("full") / "full.h5"
    run_augment(data_h5, out, _settings(), show_progress=False)
    return out


def test_seeds_and_strengths_are_per_image(full_run):
    aug = Store(full_run)
    seeds = [image_seed(0, "normal", "", int(s), int(v))
             for s, v in zip(aug.column("source_index"), aug.column("variant"), strict=True)]
    assert aug.column("seed").tolist() == seeds
    assert len(set(aug.column("strength").tolist())) > 1  # drawn per image from the list


def test_batch_size_does_not_change_images(data_h5, full_run, tmp_path):
    run_augment(data_h5, tmp_path / "b5.h5", _settings(batch_size=5), show_progress=False)
    _same(full_run, tmp_path / "b5.h5", exact=False)


def test_resume_after_interrupt_equals_uninterrupted_run(data_h5, full_run, tmp_path):
    out = tmp_path / "aug.h5"

    def crash(done: int, total: int) -> None:
        if done >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_augment(data_h5, out, _settings(), show_progress=False, on_batch=crash)
    shards = tmp_path / "aug.h5.shards"
    assert not out.exists() and len(list(shards.glob("rows-*.npz"))) == 2
    with pytest.raises(OutputExistsError, match="interrupted"):
        run_augment(data_h5, out, _settings(), show_progress=False)
    with pytest.raises(MismatchError, match="other settings or inputs: guidance: 7.5 -> 3.0"):
        run_augment(data_h5, out, _settings(guidance=3.0), resume=True, show_progress=False)
    result = run_augment(data_h5, out, _settings(), resume=True, show_progress=False)
    assert result.resumed and result.n_generated == result.n_images - 6
    _same(full_run, out)
    assert not shards.exists()
    before = out.stat().st_mtime_ns, out.read_bytes()
    again = run_augment(data_h5, out, _settings(), resume=True, show_progress=False)  # complete: nothing to do
    assert again.already_complete and again.n_generated == 0 and again.n_images == result.n_images
    assert (out.stat().st_mtime_ns, out.read_bytes()) == before
    with pytest.raises(MismatchError, match="guidance: 7.5 -> 3.0"):  # a complete store made otherwise
        run_augment(data_h5, out, _settings(guidance=3.0), resume=True, show_progress=False)


@pytest.mark.slow
def test_resume_after_kill_9(data_h5, full_run, tmp_path, dsc_cache):
    out = tmp_path / "k.h5"
    cmd = [sys.executable, "-m", "dsc", "augment", str(data_h5), "--model", "tiny", "--strategy", "real-guidance",
           "--resolution", str(MASKED_RES), "--steps", "4", "--per-image", "2", "--batch-size", "3",
           "--strength", "0.25,0.5,1.0", "-o", str(out)]
    if not kill_augment_after_first_batch(cmd, out, tmp_path, dsc_cache):
        pytest.skip("the run finished before it could be killed")
    run_augment(data_h5, out, _settings(), resume=True, show_progress=False)
    _same(full_run, out)


def test_a_second_writer_of_the_same_output_is_refused(data_h5, tmp_path):
    from dsc.augment import shard_dir
    from dsc.locks import OutputLockedError, output_lock

    out = tmp_path / "locked.h5"
    with output_lock(shard_dir(out)), pytest.raises(OutputLockedError):  # another process is generating it
        run_augment(data_h5, out, _settings(), show_progress=False)
    assert not out.exists()
