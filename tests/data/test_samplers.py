from __future__ import annotations

import torch

from dsc.data.samplers import BatchPlan, VariantIndex


def test_epoch_covers_positives_and_mixes_negatives():
    labels = torch.tensor([0] * 10 + [1] * 10)
    plan = BatchPlan(labels, n_negatives=10, batch_size=8)
    assert plan.n_neg == round(8 * 10 / 30)
    batches = plan.epoch(torch.Generator().manual_seed(0))
    pos = torch.cat([b[b < 20] for b in batches])
    assert sorted(pos.tolist()) == list(range(20))
    assert all(int((b >= 20).sum()) == plan.n_neg for b in batches)
    assert torch.cat([b[b >= 20] for b in batches]).max() < 30
    fixed = BatchPlan(labels, n_negatives=10, batch_size=8, negatives_fraction=0.5)
    assert fixed.n_neg == 4


def test_same_generator_same_batches_and_balanced_sampling():
    labels = torch.tensor([0] * 90 + [1] * 10)
    a = BatchPlan(labels, 0, 10).epoch(torch.Generator().manual_seed(1))
    b = BatchPlan(labels, 0, 10).epoch(torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    g = torch.Generator().manual_seed(0)
    drawn = torch.cat([torch.cat(BatchPlan(labels, 0, 10, balanced=True).epoch(g)) for _ in range(20)])
    share = float((labels[drawn] == 1).float().mean())
    assert 0.4 < share < 0.6


def test_variant_index_picks_own_variants_only():
    syn_src = torch.tensor([5, 3, 5, 7, 3, 5])
    idx = VariantIndex(syn_src)
    query = torch.tensor([5, 3, 9, 7] * 50)
    replace, rows = idx.pick(query, 1.0, torch.Generator().manual_seed(0))
    assert not replace[2::4].any()  # row 9 has no variants
    assert replace[0::4].all() and replace[1::4].all()
    assert torch.equal(syn_src[rows[replace]], query[replace])
    assert set(rows[0::4].tolist()) == {0, 2, 5}
    none, _ = idx.pick(query, 0.0, torch.Generator().manual_seed(0))
    assert not none.any()
