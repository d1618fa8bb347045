"""The OOD policies of SupConLoss against the reference, and the thesis bugs that must not recur."""

from __future__ import annotations

import pytest
import torch

from dsc.losses import SupConLoss
from tests.losses.reference import reference_supcon

POLICIES = ["negatives", "hard", "instance"]


def _batch(seed: int = 0, bsz: int = 10, views: int = 2):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(bsz, views, 6, generator=g, dtype=torch.float64).requires_grad_(True)
    labels = torch.randint(0, 3, (bsz,), generator=g)
    is_ood = torch.zeros(bsz, dtype=torch.bool)
    is_ood[torch.randperm(bsz, generator=g)[: bsz // 3]] = True
    source = torch.randint(0, 3, (bsz,), generator=g)
    return feats, labels, is_ood, source


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("weight", [1.0, 0.5, 2.0, 0.0])
@pytest.mark.parametrize("views", [2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_policies_match_reference(policy: str, weight: float, views: int, seed: int) -> None:
    feats, labels, is_ood, source = _batch(seed, views=views)
    got = SupConLoss(ood_policy=policy, ood_weight=weight)(feats, labels, is_ood, source)
    want = reference_supcon(feats, labels, is_ood, source, ood_policy=policy, ood_weight=weight)
    _close(got, want)
    _close(torch.autograd.grad(got, feats)[0], torch.autograd.grad(want, feats)[0])


@pytest.mark.parametrize("policy", ["negatives", "instance"])
def test_policies_without_labels(policy: str) -> None:
    feats, _, is_ood, _ = _batch(3)
    got = SupConLoss(ood_policy=policy, ood_weight=0.7)(feats, None, is_ood)
    _close(got, reference_supcon(feats, None, is_ood, ood_policy=policy, ood_weight=0.7))


def test_no_ood_flags_means_plain_supcon() -> None:
    feats, labels, _, source = _batch(4)
    none_ood = torch.zeros(10, dtype=torch.bool)
    for policy in POLICIES:
        _close(SupConLoss(ood_policy=policy)(feats, labels, none_ood, source), SupConLoss()(feats, labels))


def test_ood_label_values_are_ignored() -> None:
    """Thesis bug 1: OOD images labelled -class_id made class 0's OOD images positives of class 0."""
    feats, labels, is_ood, source = _batch(5)
    labels = labels.clone()
    labels[is_ood] = 0  # -0 == 0: the exact collision of the thesis
    source = source.clone()
    source[is_ood] = 0
    for policy in POLICIES:
        loss = SupConLoss(ood_policy=policy)
        a = loss(feats, labels, is_ood, source)
        relabelled = labels.clone()
        relabelled[is_ood] = 77
        _close(a, loss(feats, relabelled, is_ood, source))
        # and they really are not positives: treating them as in-distribution changes the loss
        assert not torch.allclose(a, loss(feats, labels, torch.zeros_like(is_ood), source))


def test_ood_views_are_not_positives_of_their_own_other_view_under_negatives() -> None:
    """With one ID image and one OOD image, only the ID views are anchors; OOD views only add negatives."""
    feats = torch.randn(2, 2, 4, dtype=torch.float64)
    is_ood = torch.tensor([False, True])
    z = torch.nn.functional.normalize(feats, dim=-1)
    views = [z[0, 0], z[0, 1], z[1, 0], z[1, 1]]
    s = lambda i, j: (views[i] @ views[j]) / 0.1  # noqa: E731
    expected = sum(-(s(i, p) - torch.logsumexp(torch.stack([s(i, j) for j in range(4) if j != i]), 0))
                   for i, p in [(0, 1), (1, 0)]) / 2
    _close(SupConLoss()(feats, None, is_ood), expected)


def test_hard_excludes_foreign_ood_entirely() -> None:
    """Thesis bug 4: excluded logits must be -inf (dropped), not 0 (which still adds exp(0) = 1).

    OOD images whose source class matches no anchor affect nothing: the loss equals the loss
    of the batch without them."""
    feats, labels, _, _ = _batch(6)
    labels = torch.tensor([0, 0, 1, 1, 0, 1, 2, 2, 2, 2])
    is_ood = torch.tensor([False] * 6 + [True] * 4)
    source = torch.tensor([0] * 6 + [5] * 4)  # a class no anchor has
    hard = SupConLoss(ood_policy="hard")
    _close(hard(feats, labels, is_ood, source), hard(feats[:6], labels[:6]))
    # zero weight drops OOD from every denominator, whatever the policy
    for policy in POLICIES[:2]:
        dropped = SupConLoss(ood_policy=policy, ood_weight=0.0)(feats, labels, is_ood, source)
        _close(dropped, SupConLoss()(feats[:6], labels[:6]))


def test_hard_only_affects_anchors_of_the_source_class() -> None:
    feats, labels, is_ood, source = _batch(7)
    hard = SupConLoss(ood_policy="hard")(feats, labels, is_ood, source)
    negatives = SupConLoss(ood_policy="negatives")(feats, labels, is_ood, source)
    assert hard < negatives  # fewer negatives in the denominators, never more


def test_more_ood_weight_means_more_loss() -> None:
    feats, labels, is_ood, source = _batch(8)
    values = [SupConLoss(ood_weight=w)(feats, labels, is_ood, source).item() for w in (0.0, 0.5, 1.0, 4.0)]
    assert values == sorted(values) and values[0] < values[-1]


def test_instance_makes_ood_anchors_of_their_own_views() -> None:
    feats, labels, is_ood, source = _batch(9)
    instance = SupConLoss(ood_policy="instance")(feats, labels, is_ood, source)
    negatives = SupConLoss(ood_policy="negatives")(feats, labels, is_ood, source)
    assert not torch.allclose(instance, negatives)
    # OOD-only batch: SimCLR among the OOD images
    ood_only = torch.ones(10, dtype=torch.bool)
    _close(SupConLoss(ood_policy="instance")(feats, labels, ood_only, source), SupConLoss()(feats))


def test_hard_needs_source_labels() -> None:
    feats, labels, is_ood, _ = _batch(10)
    with pytest.raises(ValueError, match="source_labels"):
        SupConLoss(ood_policy="hard")(feats, labels, is_ood)
    with pytest.raises(ValueError, match="labels and source_labels"):
        SupConLoss(ood_policy="hard")(feats, None, is_ood, labels)
