"""A failed or interrupted `dsc augment` leaves nothing that refuses the retry, and a swallowed Ctrl-C
never lets it assemble a store (issue 12)."""

from __future__ import annotations

import pytest

from dsc.testing import FAST_AUGMENT


@pytest.fixture(autouse=True)
def _forget_ctrl_c():
    """A Ctrl-C recorded by a test must not reach the tests after it."""
    from dsc import interrupts

    yield
    interrupts._INTERRUPTED.clear()


def test_a_failure_in_the_first_batch_leaves_no_shards_folder(run_dsc, data_h5, tmp_path, monkeypatch):
    import dsc.augment

    def broken(self, batch, cache):
        raise RuntimeError("the generator broke")

    real = dsc.augment.AugmentJob.generate
    monkeypatch.setattr(dsc.augment.AugmentJob, "generate", broken)
    out = tmp_path / "a.h5"
    args = ["augment", data_h5, *FAST_AUGMENT, "--strategy", "real-guidance", "-o", out]
    res = run_dsc(*args)
    assert res.code == 1 and "the generator broke" in res.err, res
    assert not (tmp_path / "a.h5.shards").exists() and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no lock, no partial store either
    monkeypatch.setattr(dsc.augment.AugmentJob, "generate", real)
    res = run_dsc(*args)  # the same command again: not refused by what the failed one left
    assert res.code == 0 and out.is_file(), res


def test_a_shards_folder_with_finished_batches_is_kept(run_dsc, data_h5, tmp_path, monkeypatch):
    import dsc.augment

    real = dsc.augment.AugmentJob.generate
    calls = []

    def second_breaks(self, batch, cache):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the generator broke")
        return real(self, batch, cache)

    monkeypatch.setattr(dsc.augment.AugmentJob, "generate", second_breaks)
    res = run_dsc("augment", data_h5, *FAST_AUGMENT, "--strategy", "real-guidance", "-o", tmp_path / "a.h5")
    assert res.code == 1, res
    assert len(list((tmp_path / "a.h5.shards").glob("rows-*.npz"))) == 1  # the finished batch is work: kept


def test_a_swallowed_ctrl_c_stops_augment_before_the_store(run_dsc, data_h5, tmp_path, monkeypatch):
    import dsc.augment.shards
    from dsc import interrupts

    save = dsc.augment.shards.save_shard

    def save_then_press_ctrl_c(*args, **kwargs):
        save(*args, **kwargs)
        interrupts._INTERRUPTED.set()  # as the SIGINT handler does, with the exception lost in a finaliser

    monkeypatch.setattr(dsc.augment.shards, "save_shard", save_then_press_ctrl_c)
    out = tmp_path / "a.h5"
    res = run_dsc("augment", data_h5, *FAST_AUGMENT, "--strategy", "real-guidance", "-o", out)
    assert res.code == 130, res
    assert not out.exists() and len(list((tmp_path / "a.h5.shards").glob("rows-*.npz"))) == 1
    assert "3 of 12 images kept in" in res.err and "--resume" in res.err
