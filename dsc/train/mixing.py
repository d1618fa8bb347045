"""Soft labels of mixed synthetic images (``diff-mix``) in training: targets for cross-entropy, the SupCon rule.

A mixed row has class i (``source_label``), class j (``other_label``) and the weight w of j (``mix_weight``,
0 < w <= 1); its soft label is q = (1 - w) * onehot(i) + w * onehot(j). Rows with w = 0 (real images, every
other strategy, stores without the column) keep their hard label ``labels``.

- ``dsc baseline`` trains on q: the soft-target cross-entropy -sum_c q_c log p_c (:func:`soft_targets`).
- ``dsc pretrain`` needs one class per positive, so ``--mix-label`` maps a mixed row to a label or leaves it
  out of the positives (:func:`supcon_labels`; docs/training.md#mixed-images-soft-labels):
  ``dominant`` (default): the class of weight max(1 - w, w) when that weight is at least ``--mix-threshold``
  (and the two weights differ), else left out; ``source``: always i; ``drop``: every mixed row left out.
  A left-out row is never an anchor nor anyone's positive, and it is left out of the denominators of the
  anchors of classes i and j; it stays a negative of every other class (dsc.losses, ``mixed_classes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

MIX_RULES = ("dominant", "source", "drop")


def soft_targets(labels: torch.Tensor, source: torch.Tensor, other: torch.Tensor, weight: torch.Tensor,
                 n_classes: int) -> torch.Tensor:
    """Probability targets [B, n_classes]: onehot(labels) for rows with w = 0, (1 - w) onehot(source) +
    w onehot(other) for mixed rows."""
    mixed = weight > 0
    first = torch.where(mixed, source, labels)
    second = torch.where(mixed, other, labels)
    w = torch.where(mixed, weight, torch.zeros_like(weight)).float()[:, None]
    return (1 - w) * F.one_hot(first, n_classes).float() + w * F.one_hot(second, n_classes).float()


def supcon_labels(labels: torch.Tensor, source: torch.Tensor, other: torch.Tensor, weight: torch.Tensor,
                  rule: str, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(label, mixed_classes) per row under ``rule``: the SupCon label (``labels`` for rows with w = 0), and
    [N, 2] int64 holding (i, j) for rows left out of the positives, (-1, -1) for the others."""
    if rule not in MIX_RULES:
        raise ValueError(f"mix rule must be one of {', '.join(MIX_RULES)}, got {rule!r}")
    mixed = weight > 0
    if rule == "source":
        out, left_out = torch.where(mixed, source, labels), torch.zeros_like(mixed)
    elif rule == "drop":
        out, left_out = labels.clone(), mixed
    else:
        dominant = torch.where(weight > 0.5, other, source)
        top = torch.maximum(weight, 1 - weight)
        keep = (top >= threshold) & (weight != 0.5)
        out, left_out = torch.where(mixed, dominant, labels), mixed & ~keep
    pairs = torch.stack([source, other], 1).long()
    return out.long(), torch.where(left_out[:, None], pairs, torch.full_like(pairs, -1))


def view_usable(source: torch.Tensor, other: torch.Tensor, weight: torch.Tensor, rule: str,
                threshold: float) -> torch.Tensor:
    """bool per synthetic row: may it be the second view of its source image (``--synthetic-policy view``)?
    Only when the rule gives it its source class and does not leave it out (rows with w = 0 always)."""
    label, pairs = supcon_labels(source, source, other, weight, rule, threshold)
    return (label == source) & (pairs[:, 0] < 0)


def rule_counts(weight: torch.Tensor, source: torch.Tensor, label: torch.Tensor, pairs: torch.Tensor
                ) -> dict[str, int]:
    """How many mixed rows the rule labels as their source class i, as class j, and leaves out."""
    mixed, left = weight > 0, pairs[:, 0] >= 0
    kept = mixed & ~left
    return {"mixed": int(mixed.sum()), "as_source": int((kept & (label == source)).sum()),
            "as_other": int((kept & (label != source)).sum()), "left_out": int((mixed & left).sum())}


@dataclass
class SeenCounter:
    """Mixed images drawn into batches in the current round, per kind (summed over processes in ``pop``)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, **n: int) -> None:
        for key, value in n.items():
            self.counts[key] = self.counts.get(key, 0) + int(value)

    def pop(self, env: Any, keys: tuple[str, ...]) -> dict[str, int]:
        """This round's counts (0 for keys not seen), all-reduced over the processes, then reset."""
        values = [self.counts.get(k, 0) for k in keys]
        if env is not None and env.world > 1:
            values = [int(v) for v in env.all_reduce_sum(torch.tensor(values, device=env.device)).tolist()]
        self.counts = {}
        return dict(zip(keys, values, strict=True))
