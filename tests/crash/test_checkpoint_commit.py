"""A checkpoint is saved as a whole: a crash at any point of save_checkpoint leaves the previous checkpoint
or the new one, never the weights of one epoch with the state of another."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from dsc.train.checkpoint import has_checkpoint, load_checkpoint, read_checkpoint_info, save_checkpoint


def _save(run, epoch: int, net: nn.Module, opt) -> None:
    with torch.no_grad():
        net.weight.fill_(float(epoch))
    save_checkpoint(run, "last", {"net": net}, {"epoch": epoch}, optimizer=opt,
                    rng={"g": torch.Generator().manual_seed(epoch)})


@pytest.mark.parametrize("crash", ["before_commit", "after_commit", "mid_rename"])
def test_crash_during_save(tmp_path, monkeypatch, crash):
    net = nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    _save(tmp_path, 1, net, opt)
    folder = tmp_path / "checkpoints"
    real_replace = os.replace
    calls = {"n": 0}

    def dying_replace(src, dst):  # the process "dies" at one rename of the second save
        name = os.fspath(dst)
        if crash == "before_commit" and name.endswith("last.json.next"):
            raise KeyboardInterrupt
        if crash == "after_commit" and name.endswith("last.safetensors") and not os.fspath(src).endswith(".tmp"):
            raise KeyboardInterrupt
        if crash == "mid_rename" and name.endswith("last.optim.safetensors") and not os.fspath(src).endswith(".tmp"):
            raise KeyboardInterrupt
        calls["n"] += 1
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, 2, net, opt)
    monkeypatch.setattr(os, "replace", real_replace)
    assert has_checkpoint(tmp_path, "last")
    expected = 1 if crash == "before_commit" else 2  # committed saves are finished on the next read
    assert read_checkpoint_info(tmp_path, "last")["epoch"] == expected
    fresh = nn.Linear(2, 2)
    info = load_checkpoint(tmp_path, "last", {"net": fresh})
    assert torch.equal(fresh.weight, torch.full((2, 2), float(expected)))
    assert torch.equal(info["rng_states"]["g"], torch.Generator().manual_seed(expected).get_state())
    assert not (folder / "last.json.next").exists()
