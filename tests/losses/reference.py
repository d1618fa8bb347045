"""A deliberately plain SupCon reference: explicit loops, masks, exp and log, in float64.

It follows the definitions in docs/loss.md literally, one anchor at a time, so that the vectorised
dsc.losses.SupConLoss can be checked against it (values and gradients).
"""

from __future__ import annotations

import torch


def reference_supcon(features: torch.Tensor, labels: torch.Tensor | None = None,
                     is_ood: torch.Tensor | None = None, source_labels: torch.Tensor | None = None, *,
                     temperature: float = 0.1, base_temperature: float | None = None,
                     ood_policy: str = "negatives", ood_weight: float = 1.0,
                     anchors_of: range | None = None, mixed_classes: torch.Tensor | None = None) -> torch.Tensor:
    """Loss of the anchors of samples ``anchors_of`` (default: all) against every view of ``features``.

    ``mixed_classes`` [B, 2]: (i, j) marks a sample left out of the positives (never an anchor or a positive,
    and not in the denominators of anchors labelled i or j); (-1, -1) an ordinary one."""
    bsz, views, _ = features.shape
    z = features / features.norm(dim=-1, keepdim=True)
    items = [(b, v) for v in range(views) for b in range(bsz)]
    ood = [bool(is_ood[b]) if is_ood is not None else False for b in range(bsz)]
    pair = [tuple(int(c) for c in mixed_classes[b]) if mixed_classes is not None else (-1, -1)
            for b in range(bsz)]
    left = [p[0] >= 0 for p in pair]
    losses = []
    for i, (bi, vi) in enumerate(items):
        if anchors_of is not None and bi not in anchors_of:
            continue
        if ood[bi] and ood_policy != "instance":
            continue  # OOD views are anchors only under "instance"
        if left[bi]:
            continue  # left out of the positives: never an anchor
        positives = []
        for j, (bj, _vj) in enumerate(items):
            if j == i:
                continue
            if ood[bi]:
                if bj == bi:
                    positives.append(j)
            elif not ood[bj] and not left[bj] and (bj == bi if labels is None
                                                   else int(labels[bj]) == int(labels[bi])):
                positives.append(j)
        if not positives:
            continue
        terms = []
        for j, (bj, _vj) in enumerate(items):
            if j == i:
                continue
            if left[bj] and int(labels[bi]) in pair[bj]:
                continue  # a mix of the anchor's class is no negative of it
            weight = 1.0
            if ood[bj] and j not in positives:
                if ood_policy == "hard" and int(source_labels[bj]) != int(labels[bi]):
                    continue
                weight = ood_weight
            if weight == 0:
                continue
            terms.append(weight * torch.exp((z[bi, vi] * z[bj, _vj]).sum() / temperature))
        log_denominator = torch.log(torch.stack(terms).sum())
        log_probs = [(z[bi, vi] * z[items[p][0], items[p][1]]).sum() / temperature - log_denominator
                     for p in positives]
        losses.append(-torch.stack(log_probs).mean())
    if not losses:
        return features.sum() * 0.0
    scale = temperature / base_temperature if base_temperature is not None else 1.0
    return torch.stack(losses).mean() * scale

