"""Contrast sets: an explicit ``Contrast`` in one process, and ``gather_for_contrast`` over 2 gloo processes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dsc.losses import Contrast, SupConLoss, gather_for_contrast
from tests.losses.reference import reference_supcon


def _data(bsz: int = 8):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(bsz, 2, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (bsz,), generator=g)
    is_ood = torch.zeros(bsz, dtype=torch.bool)
    is_ood[[1, 6]] = True
    source = torch.randint(0, 3, (bsz,), generator=g)
    return feats, labels, is_ood, source


@pytest.mark.parametrize("policy", ["negatives", "hard", "instance"])
def test_local_anchors_against_a_contrast_set(policy: str) -> None:
    feats, labels, is_ood, source = _data()
    lo, hi = 3, 7
    local = feats[lo:hi].clone().requires_grad_(True)
    contrast = Contrast(torch.cat([feats[:lo], local, feats[hi:]]), labels, is_ood, source, offset=lo)
    got = SupConLoss(ood_policy=policy, ood_weight=0.5)(local, labels[lo:hi], is_ood[lo:hi], source[lo:hi],
                                                        contrast=contrast)
    want = reference_supcon(feats, labels, is_ood, source, ood_policy=policy, ood_weight=0.5,
                            anchors_of=range(lo, hi))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_contrast_mismatches_are_errors() -> None:
    feats, labels, is_ood, _ = _data()
    loss = SupConLoss()
    with pytest.raises(ValueError, match="do not match"):
        loss(feats[:2], labels[:2], contrast=Contrast(feats[:, :1], labels))
    with pytest.raises(ValueError, match="offset"):
        loss(feats[:2], labels[:2], contrast=Contrast(feats, labels, offset=7))
    with pytest.raises(ValueError, match="is_ood must be given for both"):
        loss(feats[:2], labels[:2], is_ood[:2], contrast=Contrast(feats, labels))


def test_gather_is_none_without_a_process_group() -> None:
    feats, labels, _, _ = _data()
    assert gather_for_contrast(feats, labels) is None


def _worker(rank: int, world: int, init: str, sizes: list[int], out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        feats, labels, is_ood, source = _data(sum(sizes))
        lo = sum(sizes[:rank])
        hi = lo + sizes[rank]
        local = feats[lo:hi].clone().requires_grad_(True)
        contrast = gather_for_contrast(local, labels[lo:hi], is_ood[lo:hi], source[lo:hi])
        loss = SupConLoss(ood_policy="hard")(local, labels[lo:hi], is_ood[lo:hi], source[lo:hi], contrast=contrast)
        loss.backward()
        torch.save({"loss": loss.detach(), "grad": local.grad, "offset": contrast.offset}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_process_gather_gives_the_global_gradient(tmp_path: Path) -> None:
    """Each rank: its anchors against the global batch (uneven batches); the gradient each rank gets
    for its features is that of the sum of all ranks' losses (DDP's averaging then makes it the mean)."""
    import torch.multiprocessing as mp

    sizes = [3, 5]
    mp.spawn(_worker, args=(2, f"file://{tmp_path}/init", sizes, str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    feats, labels, is_ood, source = _data(sum(sizes))
    full = feats.clone().requires_grad_(True)
    total = sum(
        reference_supcon(full, labels, is_ood, source, ood_policy="hard",
                         anchors_of=range(sum(sizes[:r]), sum(sizes[: r + 1])))
        for r in range(2)
    )
    (grad,) = torch.autograd.grad(total, full)
    for r, res in enumerate(results):
        lo = sum(sizes[:r])
        assert res["offset"] == lo
        want = reference_supcon(feats, labels, is_ood, source, ood_policy="hard",
                                anchors_of=range(lo, lo + sizes[r]))
        torch.testing.assert_close(res["loss"], want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(res["grad"], grad[lo: lo + sizes[r]], rtol=1e-5, atol=1e-5)
