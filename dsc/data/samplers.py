"""Which rows go into each batch: an epoch over the positives pool, plus a share of OOD negatives.

Rows are indices into one pool: positives (real train images and, with ``--synthetic-policy extra``,
synthetic images) come first, negatives (OOD rows of ``--negatives`` stores) after them. Each batch of
``batch_size`` rows holds ``n_neg`` negatives: ``round(batch_size * fraction)``, where ``fraction`` is
``--negatives-fraction`` or, by default, the negatives' share of the pool (proportional), at least one
and at most ``batch_size - 2``. An epoch is one pass over the positives (a permutation, or with
``balanced`` a class-balanced draw with replacement of the same length); negatives are drawn from a
permutation of the negatives, recycled as needed. Every random draw uses the given generator.
"""

from __future__ import annotations

import math

import torch


class BatchPlan:
    """Global batches of pool indices, identical on every process (each takes its own slice)."""

    def __init__(self, positive_labels: torch.Tensor, n_negatives: int, batch_size: int, *,
                 balanced: bool = False, negatives_fraction: float | None = None) -> None:
        self.labels = positive_labels
        self.n_pos, self.n_neg_pool = int(positive_labels.shape[0]), int(n_negatives)
        if self.n_pos == 0:
            raise ValueError("no positives to train on")
        self.batch_size, self.balanced = batch_size, balanced
        if self.n_neg_pool:
            frac = negatives_fraction if negatives_fraction is not None else (
                self.n_neg_pool / (self.n_pos + self.n_neg_pool))
            self.n_neg = min(max(1, round(batch_size * frac)), batch_size - 2)
        else:
            self.n_neg = 0
        self.n_pos_batch = batch_size - self.n_neg
        self.steps = max(1, math.ceil(self.n_pos / self.n_pos_batch))

    def _positives(self, g: torch.Generator) -> torch.Tensor:
        if not self.balanced:
            return torch.randperm(self.n_pos, generator=g)
        counts = torch.bincount(self.labels, minlength=int(self.labels.max()) + 1).float()
        weights = 1.0 / counts[self.labels]
        return torch.multinomial(weights, self.n_pos, replacement=True, generator=g)

    def _negatives(self, n: int, g: torch.Generator) -> torch.Tensor:
        reps = math.ceil(n / self.n_neg_pool)
        return torch.cat([torch.randperm(self.n_neg_pool, generator=g) for _ in range(reps)])[:n] + self.n_pos

    def epoch(self, g: torch.Generator) -> list[torch.Tensor]:
        """This epoch's batches (pool indices); a last batch with fewer than 2 positives is dropped."""
        pos = self._positives(g)
        chunks = list(pos.split(self.n_pos_batch))
        if len(chunks) > 1 and len(chunks[-1]) < 2:
            chunks = chunks[:-1]
        if not self.n_neg:
            return chunks
        neg = self._negatives(self.n_neg * len(chunks), g).split(self.n_neg)
        return [torch.cat([p, n]) for p, n in zip(chunks, neg, strict=True)]


class VariantIndex:
    """For each DATA.h5 row, the synthetic rows made from it (matched by ``source_index``); with ``usable``
    (bool per synthetic row) only those rows are ever picked."""

    def __init__(self, synthetic_source_index: torch.Tensor, usable: torch.Tensor | None = None) -> None:
        rows = torch.arange(synthetic_source_index.shape[0]) if usable is None else usable.nonzero().flatten()
        order = rows[torch.argsort(synthetic_source_index[rows], stable=True)]
        self.sorted_rows = order
        self.sorted_src = synthetic_source_index[order]

    def pick(self, source_index: torch.Tensor, probability: float, g: torch.Generator) -> tuple[torch.Tensor,
                                                                                                  torch.Tensor]:
        """For each given DATA.h5 row: replace? (with ``probability``, if it has variants) and which variant."""
        n = source_index.shape[0]
        lo = torch.searchsorted(self.sorted_src, source_index, side="left")
        hi = torch.searchsorted(self.sorted_src, source_index, side="right")
        count = hi - lo
        u = torch.rand(n, 2, generator=g)
        replace = (u[:, 0] < probability) & (count > 0)
        choice = lo + torch.floor(u[:, 1] * count.clamp(min=1)).long()
        rows = torch.where(replace, self.sorted_rows[choice.clamp(max=max(len(self.sorted_rows) - 1, 0))],
                           torch.zeros_like(choice)) if len(self.sorted_rows) else torch.zeros_like(choice)
        return replace, rows
