from __future__ import annotations

import pytest
import torch

from dsc.train.common import amp_dtype, lr_at
from dsc.train.knn import knn_top1


def test_cosine_schedule_with_warmup():
    lrs = [lr_at(s, 100, 10, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] < 0.01
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert lr_at(0, 10, 0, 0.5) == pytest.approx(0.5)


def test_knn_top1_on_separable_and_random_features():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(4, 16, generator=g) * 5
    labels = torch.arange(4).repeat_interleave(20)
    feats = centers[labels] + 0.1 * torch.randn(80, 16, generator=g)
    assert knn_top1(feats[::2], labels[::2], feats[1::2], labels[1::2], k=5) == 1.0
    noise = torch.randn(80, 16, generator=g)
    assert knn_top1(noise[::2], labels[::2], noise[1::2], labels[1::2], k=5) < 0.6


def test_amp_is_off_on_cpu():
    assert amp_dtype("auto", torch.device("cpu")) is None
    assert amp_dtype("bf16", torch.device("cpu")) is None
