"""CUDA paths of the evaluation suite (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from tests.evaluate.fakes import make_data_store, make_run, make_synthetic_store

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_corruptions_match_cpu():
    from dsc.evaluate.corruptions import CORRUPTIONS, corrupt

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(6, 3, 48, 48, generator=g) * 255).to(torch.uint8)
    for name in CORRUPTIONS:
        for sev in (1, 5):
            cpu = corrupt(x, name, sev, seed=3)
            gpu = corrupt(x.cuda(), name, sev, seed=3)
            assert gpu.device.type == "cuda" and gpu.dtype == torch.uint8
            diff = (gpu.cpu().int() - cpu.int()).abs()
            # same random draws; CUDA kernels (antialiased resize, blur) may round one grey level apart
            assert diff.max() <= 2 and diff.float().mean() < 0.5, (name, sev)


def test_features_with_amp_close_to_cpu(tmp_path):
    from dsc.backbones import create_backbone
    from dsc.evaluate.features import extract_features

    data = make_data_store(tmp_path / "d.h5")
    torch.manual_seed(0)
    bb = create_backbone("timm:test_resnet")
    rows = list(range(len(data)))
    kw = dict(image_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, batch_size=7)
    cpu = extract_features(bb.module, data, rows, device="cpu", **kw)
    gpu = extract_features(bb.module.cuda(), data, rows, device="cuda", **kw)
    assert gpu.device.type == "cpu" and gpu.dtype == torch.float32 and gpu.shape == cpu.shape
    rel = (gpu - cpu).norm(dim=1) / cpu.norm(dim=1).clamp_min(1e-6)
    assert rel.max() < 0.05


def test_probe_on_cuda(tmp_path):
    from dsc.probe import probe
    from dsc.settings import ProbeSettings

    data = make_data_store(tmp_path / "d.h5", holdout=3)
    ood = make_synthetic_store(tmp_path / "o.h5", data, ood=True, evaluation_only=True)
    run = make_run(tmp_path / "run", data)
    res = probe(run, ProbeSettings(epochs=10, severities=[1, 5], device="cuda"), ood=[ood.path])
    m = res.metrics
    assert set(m["ood"]) == {"holdout", "synthetic"} and len(m["robustness"]["per_corruption"]) == 8
    cpu = probe(run, ProbeSettings(epochs=10, severities=[1, 5], device="cpu"), ood=[ood.path], force=True)
    assert not cpu.embeddings_reused  # the cache is per device type
    assert abs(cpu.metrics["test"]["top1"] - m["test"]["top1"]) <= 0.25
