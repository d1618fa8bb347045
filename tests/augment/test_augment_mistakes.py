"""`dsc augment` mistakes typed as a user types them: each answer says what works (issue 12)."""

from __future__ import annotations

import re

from dsc.testing import FAST_AUGMENT, masked_store


def test_inpaint_object_without_masks_gives_advice_that_works(run_dsc, tmp_path):
    data = masked_store(tmp_path / "nomasks.h5", masks=False)
    res = run_dsc("augment", data, *FAST_AUGMENT, "--strategy", "real-guidance", "--mode", "ood",
                  "--ood-strategy", "inpaint-object", "-o", tmp_path / "a.h5")
    assert res.code == 1, res
    assert "has no object masks" in res.err and "--ood-strategy strength, other-class or blend" in res.err
    assert "--mask none" not in res.err  # refused with inpaint-object: not advice that works


def test_ctrl_c_says_what_was_kept_and_how_to_resume(run_dsc, data_h5, tmp_path, monkeypatch):
    import dsc.augment.shards

    save = dsc.augment.shards.save_shard
    calls = []

    def save_then_interrupt(*args, **kwargs):
        save(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(dsc.augment.shards, "save_shard", save_then_interrupt)
    out = tmp_path / "a.h5"
    args = ["augment", data_h5, *FAST_AUGMENT, "--strategy", "real-guidance", "-o", out]
    res = run_dsc(*args)
    assert res.code == 130, res
    assert "6 of 12 images kept in" in res.err and "a.h5.shards" in res.err and "--resume" in res.err
    assert "left untouched" not in res.err
    assert len(list((tmp_path / "a.h5.shards").glob("rows-*.npz"))) == 2
    monkeypatch.setattr(dsc.augment.shards, "save_shard", save)
    res = run_dsc(*args[:-2], "--steps", "8", "-o", out, "--resume")
    assert res.code == 1 and "steps: 4 -> 8" in res.err, res
    res = run_dsc(*args, "--resume")
    assert res.code == 0 and "6 generated now" in res.out, res


def test_summary_says_what_the_rate_counts(run_dsc, data_h5, tmp_path):
    res = run_dsc("augment", data_h5, *FAST_AUGMENT, "--strategy", "real-guidance", "-o", tmp_path / "a.h5")
    assert res.code == 0, res
    assert re.search(r"12 images; generation [0-9.]+ images/s, [0-9.]+ s in all", res.out), res
