"""SupConLoss against a plain reference and pytorch-metric-learning: values, gradients, edge cases."""

from __future__ import annotations

import pytest
import torch

from dsc.losses import SupConLoss
from tests.losses.reference import reference_supcon


def _features(bsz: int, views: int, dim: int = 8, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(bsz, views, dim, generator=g, dtype=dtype) * 2).requires_grad_(True)


def _labels(pattern: str, bsz: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 1)
    if pattern == "distinct":
        return torch.arange(bsz)
    if pattern == "same":
        return torch.full((bsz,), 3)
    if pattern == "negative":  # label values carry no meaning, negatives included
        return torch.randint(-3, 2, (bsz,), generator=g)
    return torch.randint(0, 3, (bsz,), generator=g)


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bsz", [1, 5, 9])
@pytest.mark.parametrize("views", [1, 2, 3])
@pytest.mark.parametrize("pattern", ["distinct", "same", "few", "negative"])
def test_matches_reference_values_and_gradients(bsz: int, views: int, pattern: str) -> None:
    feats = _features(bsz, views, seed=bsz * 10 + views)
    labels = _labels(pattern, bsz, seed=bsz)
    got = SupConLoss(temperature=0.2)(feats, labels)
    (g_got,) = torch.autograd.grad(got, feats)
    want = reference_supcon(feats, labels, temperature=0.2)
    (g_want,) = torch.autograd.grad(want, feats)
    _close(got, want)
    _close(g_got, g_want)


@pytest.mark.parametrize(("tau", "base"), [(0.1, None), (0.07, 0.07), (0.5, 0.07), (0.1, 1.0)])
def test_temperatures_and_base_temperature_scaling(tau: float, base: float | None) -> None:
    feats, labels = _features(8, 2), _labels("few", 8)
    got = SupConLoss(temperature=tau, base_temperature=base)(feats, labels)
    _close(got, reference_supcon(feats, labels, temperature=tau, base_temperature=base))
    unscaled = SupConLoss(temperature=tau)(feats, labels)
    _close(got, unscaled * (tau / base if base else 1.0))  # base only rescales, never a second tau


@pytest.mark.parametrize("views", [2, 3])
def test_simclr_when_labels_are_none(views: int) -> None:
    feats = _features(7, views, seed=3)
    got = SupConLoss()(feats)
    _close(got, reference_supcon(feats, None))
    # SimCLR is SupCon with one label per image
    _close(got, SupConLoss()(feats, torch.arange(7)))


def test_two_images_two_views_by_hand() -> None:
    """Each view's only positive is its own other view (self-masking happens after tiling the views)."""
    feats = _features(2, 2, seed=5)
    z = torch.nn.functional.normalize(feats, dim=-1).transpose(0, 1).reshape(4, -1)
    s = z @ z.T / 0.1
    expected = 0.0
    for i, p in [(0, 2), (1, 3), (2, 0), (3, 1)]:
        others = [j for j in range(4) if j != i]
        expected += -(s[i, p] - torch.logsumexp(s[i, others], 0))
    _close(SupConLoss()(feats), expected / 4)


def _pml(feats: torch.Tensor, labels: torch.Tensor, tau: float) -> torch.Tensor:
    from pytorch_metric_learning.losses import SupConLoss as PmlSupConLoss

    bsz, views, dim = feats.shape
    flat = feats.transpose(0, 1).reshape(bsz * views, dim)
    return PmlSupConLoss(temperature=tau)(flat, labels.repeat(views))


@pytest.mark.parametrize("pattern", ["distinct", "few", "same"])
@pytest.mark.parametrize("views", [2, 4])
def test_matches_pytorch_metric_learning(pattern: str, views: int) -> None:
    """PML normalises internally and averages over anchors with a non-zero loss (= with a positive)."""
    feats, labels = _features(12, views, seed=views), _labels(pattern, 12)
    if pattern == "same":  # PML returns 0 without any negative; keep one image of another class
        labels[0] = 99
    got = SupConLoss(temperature=0.15)(feats, labels)
    _close(got, _pml(feats, labels, 0.15))
    (g_got,) = torch.autograd.grad(got, feats)
    (g_pml,) = torch.autograd.grad(_pml(feats, labels, 0.15), feats)
    _close(g_got, g_pml)


def test_simclr_matches_pytorch_metric_learning() -> None:
    feats = _features(10, 2, seed=9)
    _close(SupConLoss()(feats), _pml(feats, torch.arange(10), 0.1))


def test_anchors_without_positives_do_not_dilute_the_mean() -> None:
    """One view per image: only the two images sharing class 0 are anchors."""
    feats = _features(5, 1, seed=2)
    labels = torch.tensor([0, 0, 1, 2, 3])
    got = SupConLoss()(feats, labels)
    _close(got, reference_supcon(feats, labels))
    s = torch.nn.functional.normalize(feats[:, 0], dim=-1) @ torch.nn.functional.normalize(feats[:, 0], dim=-1).T
    s = s / 0.1
    per_anchor = [-(s[i, 1 - i] - torch.logsumexp(s[i, [j for j in range(5) if j != i]], 0)) for i in (0, 1)]
    _close(got, (per_anchor[0] + per_anchor[1]) / 2)  # divided by 2 anchors, not by 5 views


@pytest.mark.parametrize("case", ["singletons", "all_ood", "one_view", "empty_batch"])
def test_no_anchor_gives_zero_with_finite_zero_gradients(case: str) -> None:
    if case == "singletons":
        feats, labels, ood = _features(6, 1), torch.arange(6), None
    elif case == "all_ood":
        feats, labels, ood = _features(6, 2), torch.zeros(6, dtype=torch.long), torch.ones(6, dtype=torch.bool)
    elif case == "one_view":
        feats, labels, ood = _features(1, 1), None, None
    else:
        feats, labels, ood = _features(0, 2), torch.zeros(0, dtype=torch.long), None
    loss = SupConLoss()(feats, labels, ood)
    assert loss.item() == 0.0 and loss.requires_grad
    (grad,) = torch.autograd.grad(loss, feats)
    assert torch.isfinite(grad).all() and (grad == 0).all()


def test_normalises_inside() -> None:
    feats, labels = _features(6, 2), _labels("few", 6)
    _close(SupConLoss()(feats * 7.5, labels), SupConLoss()(feats, labels))


def test_extreme_similarities_stay_finite() -> None:
    """tau small and identical features: logits of 1/tau = 1e4 overflow a naive exp; logsumexp does not."""
    feats = torch.ones(4, 2, 3, requires_grad=True)
    loss = SupConLoss(temperature=1e-4)(feats.float(), torch.tensor([0, 0, 1, 1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(feats.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_under_autocast_give_the_fp32_result(dtype: torch.dtype) -> None:
    feats = _features(16, 2, dim=32, dtype=torch.float32).detach().to(dtype).requires_grad_(True)
    labels = _labels("few", 16)
    with torch.autocast("cpu", dtype=dtype):
        got = SupConLoss()(feats, labels)
    want = SupConLoss()(feats.detach().float(), labels)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    got.backward()
    assert feats.grad.dtype == dtype and torch.isfinite(feats.grad.float()).all()


def test_float32_matches_float64() -> None:
    feats, labels = _features(32, 2, dim=16), _labels("few", 32)
    torch.testing.assert_close(SupConLoss()(feats.float(), labels).double(), SupConLoss()(feats, labels),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"temperature": 0}, "temperature"),
    ({"base_temperature": -1}, "base_temperature"),
    ({"ood_policy": "ignore"}, "ood_policy"),
    ({"ood_weight": -0.5}, "ood_weight"),
    ({"ood_weight": float("inf")}, "ood_weight"),
])
def test_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SupConLoss(**kwargs)


def test_bad_inputs() -> None:
    loss = SupConLoss()
    with pytest.raises(ValueError, match=r"\[batch, views, dim\]"):
        loss(torch.randn(4, 8))
    with pytest.raises(ValueError, match="floating point"):
        loss(torch.ones(4, 2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must be an integer tensor of shape \\[4\\]"):
        loss(torch.randn(4, 2, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must be an integer"):
        loss(torch.randn(4, 2, 3), torch.zeros(4))
    with pytest.raises(ValueError, match="is_ood must be a bool tensor"):
        loss(torch.randn(4, 2, 3), torch.zeros(4, dtype=torch.long), torch.tensor([0, 1, 0, 0]))


def test_repr_names_the_settings() -> None:
    assert "ood_policy='hard'" in repr(SupConLoss(ood_policy="hard"))
