"""SupConLoss with images left out of the positives (``mixed_classes``, dsc pretrain --mix-label)."""

from __future__ import annotations

import math

import pytest
import torch

from dsc.losses import Contrast, SupConLoss
from tests.losses.reference import reference_supcon

NONE = (-1, -1)


def _features(bsz: int, views: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(bsz, views, 6, generator=g, dtype=torch.float64) * 2).requires_grad_(True)


def _batch():
    """Six images: classes 0, 0, 1, 1, 2 and one mix of classes 0 and 1 (label 1, left out)."""
    labels = torch.tensor([0, 0, 1, 1, 2, 1])
    mixed = torch.tensor([NONE, NONE, NONE, NONE, NONE, (0, 1)])
    return labels, mixed


@pytest.mark.parametrize("views", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_values_and_gradients(views: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed + 10)
    bsz = 9
    labels = torch.randint(0, 3, (bsz,), generator=g)
    left = torch.rand(bsz, generator=g) < 0.4
    pairs = torch.stack([labels, (labels + 1 + torch.randint(0, 2, (bsz,), generator=g)) % 3], 1)
    mixed = torch.where(left[:, None], pairs, torch.full_like(pairs, -1))
    f1, f2 = _features(bsz, views, seed), _features(bsz, views, seed)
    got = SupConLoss()(f1, labels, mixed_classes=mixed)
    want = reference_supcon(f2, labels, mixed_classes=mixed)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    got.backward()
    want.backward()
    torch.testing.assert_close(f1.grad, f2.grad, rtol=1e-5, atol=1e-5)


def test_with_ood_negatives_matches_reference() -> None:
    labels, mixed = _batch()
    is_ood = torch.tensor([False, False, False, False, True, False])
    source = torch.tensor([0, 0, 1, 1, 1, 0])
    for policy in ("negatives", "hard", "instance"):
        f = _features(6, 2, 4)
        got = SupConLoss(ood_policy=policy, ood_weight=0.5)(f, labels, is_ood, source, mixed_classes=mixed)
        want = reference_supcon(f, labels, is_ood, source, ood_policy=policy, ood_weight=0.5, mixed_classes=mixed)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_left_out_image_is_no_anchor_no_positive_and_no_negative_of_its_classes() -> None:
    """By hand: moving the left-out image's features changes nothing for anchors of its classes 0 and 1, and
    it is not an anchor; for the class-2 anchor it is a negative."""
    labels, mixed = _batch()
    loss = SupConLoss()
    f = _features(6, 2, 1).detach()
    moved = f.clone()
    moved[5] = -moved[5] * 3 + 1
    per_anchor = []
    for feats in (f, moved):
        feats = feats.clone().requires_grad_(True)
        value = loss(feats, labels, mixed_classes=mixed)
        value.backward()
        per_anchor.append((float(value.detach()), feats.grad))
    # class-2 anchor (image 4) sees image 5 as a negative: the loss moves
    assert not math.isclose(per_anchor[0][0], per_anchor[1][0], rel_tol=1e-9)
    # without class 2, the left-out image touches nothing: same loss, zero gradient on it
    keep = torch.tensor([0, 1, 2, 3, 5])
    values = [float(loss(x[keep], labels[keep], mixed_classes=mixed[keep])) for x in (f, moved)]
    assert values[0] == pytest.approx(values[1], rel=1e-12)
    g = f[keep].clone().requires_grad_(True)
    loss(g, labels[keep], mixed_classes=mixed[keep]).backward()
    assert torch.count_nonzero(g.grad[4]) == 0
    # and the loss equals the loss of the batch without it
    assert values[0] == pytest.approx(float(loss(f[:4], labels[:4])), rel=1e-12)


def test_without_the_mask_the_same_image_is_a_positive() -> None:
    """The old behaviour (no ``mixed_classes``) makes image 5 a positive of class 1: a different loss."""
    labels, mixed = _batch()
    f = _features(6).detach()
    assert not math.isclose(float(SupConLoss()(f, labels)), float(SupConLoss()(f, labels, mixed_classes=mixed)))


def test_every_row_left_out_gives_zero_with_zero_gradients() -> None:
    f = _features(3)
    value = SupConLoss()(f, torch.tensor([0, 0, 1]), mixed_classes=torch.tensor([(0, 1), (0, 2), (1, 2)]))
    value.backward()
    assert float(value.detach()) == 0 and torch.count_nonzero(f.grad) == 0


def test_contrast_set_with_mixed_images_matches_reference() -> None:
    labels, mixed = _batch()
    f = _features(6, 2, 7).detach()
    lo, hi = 2, 5
    local = f[lo:hi].clone().requires_grad_(True)
    contrast = Contrast(torch.cat([f[:lo], local, f[hi:]]), labels, offset=lo, mixed_classes=mixed)
    got = SupConLoss()(local, labels[lo:hi], contrast=contrast, mixed_classes=mixed[lo:hi])
    want = reference_supcon(f, labels, anchors_of=range(lo, hi), mixed_classes=mixed)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_bad_mixed_classes() -> None:
    f = _features(3)
    loss = SupConLoss()
    with pytest.raises(ValueError, match=r"shape \[3, 2\]"):
        loss(f, torch.tensor([0, 1, 1]), mixed_classes=torch.tensor([0, 1, -1]))
    with pytest.raises(ValueError, match="needs labels"):
        loss(f, mixed_classes=torch.full((3, 2), -1))
    with pytest.raises(ValueError, match="both the batch and the contrast set"):
        loss(f, torch.tensor([0, 1, 1]), contrast=Contrast(f, torch.tensor([0, 1, 1])),
             mixed_classes=torch.full((3, 2), -1))
