from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from dsc.errors import InputError, MismatchError
from dsc.train.checkpoint import load_checkpoint, save_checkpoint
from dsc.train.run_dir import RunDir, settings_diff


def _parts(seed: int) -> dict[str, nn.Module]:
    g = torch.Generator().manual_seed(seed)
    enc, head = nn.Linear(4, 3), nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    for p in [*enc.parameters(), *head.parameters()]:
        p.data = torch.randn(p.shape, generator=g)
    return {"encoder": enc, "head": head}


def test_roundtrip_model_optimizer_rng_weights_only(tmp_path):
    parts = _parts(0)
    params = [p for m in parts.values() for p in m.parameters()]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    sum(p.sum() for p in params).backward()
    opt.step()
    gen = torch.Generator().manual_seed(5)
    save_checkpoint(tmp_path, "last", parts, {"epoch": 3, "step": 7}, optimizer=opt, rng={"sampler": gen})
    expected_next = torch.rand(3, generator=gen)

    other = _parts(1)
    params2 = [p for m in other.values() for p in m.parameters()]
    opt2 = torch.optim.SGD(params2, lr=0.5, momentum=0.9)
    info = load_checkpoint(tmp_path, "last", other, optimizer=opt2)
    assert info["epoch"] == 3 and info["step"] == 7
    for a, b in zip(params, params2, strict=True):
        assert torch.equal(a, b)
    assert opt2.param_groups[0]["lr"] == 0.1
    assert torch.equal(opt2.state_dict()["state"][0]["momentum_buffer"], opt.state_dict()["state"][0]["momentum_buffer"])
    g2 = torch.Generator()
    g2.set_state(info["rng_states"]["sampler"])
    assert torch.equal(torch.rand(3, generator=g2), expected_next)
    # no pickle anywhere: JSON + safetensors
    json.loads((tmp_path / "checkpoints" / "last.json").read_text())
    from safetensors.torch import load_file
    assert "encoder.weight" in load_file(str(tmp_path / "checkpoints" / "last.safetensors"))


def test_wrong_parts_and_missing_checkpoint(tmp_path):
    save_checkpoint(tmp_path, "best", {"encoder": nn.Linear(4, 3)}, {"epoch": 1})
    with pytest.raises(MismatchError):
        load_checkpoint(tmp_path, "best", {"encoder": nn.Linear(5, 3)})
    with pytest.raises(MismatchError, match="head"):
        load_checkpoint(tmp_path, "best", {"head": nn.Linear(4, 3)})
    with pytest.raises(InputError):
        load_checkpoint(tmp_path, "last", {"encoder": nn.Linear(4, 3)})


def test_run_dir_resume_refuses_changed_settings(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.start("pretrain", {"lr": 0.1, "workers": 0}, {}, {"data": {"path": "d", "fingerprint": "f"}}, {"name": "x"})
    run.append_metrics({"epoch": 1})
    run.append_metrics({"epoch": 2})
    run.truncate_metrics(1)
    assert run.read_metrics() == [{"epoch": 1}]
    run.check_resume("pretrain", {"lr": 0.1, "workers": 4}, {"data": {"path": "d", "fingerprint": "f"}})
    with pytest.raises(MismatchError, match="lr: 0.1 -> 0.2"):
        run.check_resume("pretrain", {"lr": 0.2, "workers": 0}, {"data": {"path": "d", "fingerprint": "f"}})
    with pytest.raises(MismatchError, match="inputs.data"):
        run.check_resume("pretrain", {"lr": 0.1, "workers": 0}, {"data": {"path": "d", "fingerprint": "g"}})
    assert settings_diff({"a": 1}, {"a": 1}) == []
