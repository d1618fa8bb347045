"""Supervised contrastive loss (Khosla et al. 2020, L_out form) with explicit OOD negatives.

``SupConLoss()(features, labels, is_ood, source_labels)`` with ``features`` [B, V, D] (V views per image).
Features are L2-normalised inside. For anchor view i with positive set P(i) and denominator set A(i):

    loss_i = -(1/|P(i)|) * sum_{p in P(i)} [ s_ip - log sum_{a in A(i)} w_ia * exp(s_ia) ],  s = z.z'/tau

and the loss is (tau / base_tau) times the mean of loss_i over anchors with |P(i)| >= 1. Only the exact
self-pair is left out of A(i); positives stay in it. Computed in fp32 (or fp64 for fp64 input) with
autocast disabled, via one logsumexp. ``docs/loss.md`` gives the OOD policies and their formulas.

``mixed_classes`` [B, 2] (optional) marks images left out of the positives (mixed images, ``dsc pretrain
--mix-label``): a row (i, j) with i >= 0 is never an anchor nor a positive, and is left out of A(i) of
anchors labelled i or j; it stays in A(i) of every other anchor. Rows (-1, -1) are ordinary samples.

Memory: one [anchors, contrast] float matrix is the only quadratic float tensor; positive sums come from
per-group feature sums (a_i . sum_{p in group} c_p), so no positive mask is ever materialised.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

OOD_POLICIES = ("negatives", "hard", "instance")


@dataclass
class Contrast:
    """Contrast samples gathered across processes (see :func:`gather_for_contrast`).

    ``features`` [M, V, D] holds every process's batch; the local batch is ``features[offset:offset+B]``.
    """

    features: Tensor
    labels: Tensor | None = None
    is_ood: Tensor | None = None
    source_labels: Tensor | None = None
    offset: int = 0
    mixed_classes: Tensor | None = None


class SupConLoss(nn.Module):
    """Supervised contrastive loss; SimCLR when ``labels`` is None.

    Args:
        temperature: tau, the softmax temperature.
        base_temperature: only rescales the loss by tau / base_temperature (None: scale 1).
        ood_policy: how views flagged by ``is_ood`` enter the loss: ``negatives`` (negatives of every
            in-distribution anchor, never anchors or positives), ``hard`` (negatives only of anchors
            whose label equals the view's ``source_labels`` entry), ``instance`` (also anchors whose
            only positives are the other views of the same image; negatives of everyone else).
        ood_weight: w >= 0 multiplying the exp-terms of OOD negatives in denominators (0 drops them).
    """

    def __init__(self, temperature: float = 0.1, base_temperature: float | None = None,
                 ood_policy: str = "negatives", ood_weight: float = 1.0) -> None:
        super().__init__()
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        if base_temperature is not None and not (base_temperature > 0 and math.isfinite(base_temperature)):
            raise ValueError(f"base_temperature must be a positive number or None, got {base_temperature!r}")
        if ood_policy not in OOD_POLICIES:
            raise ValueError(f"ood_policy must be one of {', '.join(OOD_POLICIES)}, got {ood_policy!r}")
        if not (ood_weight >= 0 and math.isfinite(ood_weight)):
            raise ValueError(f"ood_weight must be a finite number >= 0, got {ood_weight!r}")
        self.temperature = float(temperature)
        self.base_temperature = float(base_temperature) if base_temperature is not None else None
        self.ood_policy = ood_policy
        self.ood_weight = float(ood_weight)

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, base_temperature={self.base_temperature}, "
                f"ood_policy={self.ood_policy!r}, ood_weight={self.ood_weight}")

    def forward(self, features: Tensor, labels: Tensor | None = None, is_ood: Tensor | None = None,
                source_labels: Tensor | None = None, *, contrast: Contrast | None = None,
                mixed_classes: Tensor | None = None) -> Tensor:
        """Scalar loss. ``features`` [B, V, D]; ``labels``, ``source_labels`` [B] int; ``is_ood`` [B] bool.

        ``source_labels`` (needed by ``hard``) gives, for OOD images, the class they were made from;
        its entries for in-distribution images are ignored. Labels of OOD images are ignored.
        ``contrast``: samples gathered from all processes (the local batch inside), or None.
        ``mixed_classes`` [B, 2] int: (i, j) for images left out of the positives, (-1, -1) for the others
        (needs ``labels``; with ``contrast``, give the gathered ones there too).
        """
        _check(features, labels, is_ood, source_labels, "")
        _check_mixed(features, labels, mixed_classes, "")
        if contrast is None:
            contrast = Contrast(features, labels, is_ood, source_labels, 0, mixed_classes)
        else:
            _check(contrast.features, contrast.labels, contrast.is_ood, contrast.source_labels, "contrast ")
            _check_mixed(contrast.features, contrast.labels, contrast.mixed_classes, "contrast ")
            _check_contrast(features, labels, is_ood, source_labels, contrast)
            if (mixed_classes is None) != (contrast.mixed_classes is None):
                raise ValueError("mixed_classes must be given for both the batch and the contrast set, or neither")
        has_ood = contrast.is_ood is not None and bool(contrast.is_ood.any())
        if has_ood and self.ood_policy == "hard" and (contrast.labels is None or contrast.source_labels is None):
            raise ValueError("ood_policy='hard' needs labels and source_labels (the class each OOD "
                             "image was made from)")
        if features.shape[0] == 0 or features.shape[1] == 0:
            return features.sum().float() * 0.0  # empty batch: nothing to contrast
        with torch.autocast(device_type=features.device.type, enabled=False):
            return self._loss(features, labels, is_ood, contrast, has_ood)

    def _loss(self, features: Tensor, labels: Tensor | None, is_ood: Tensor | None, contrast: Contrast,
              has_ood: bool) -> Tensor:
        dtype = torch.promote_types(features.dtype, torch.float32)
        bsz, views, _ = features.shape
        m = contrast.features.shape[0]
        device = features.device
        # view-major flattening: column index = v * M + sample
        c = F.normalize(contrast.features.to(dtype), dim=-1).transpose(0, 1).reshape(views * m, -1)
        if contrast.features is features:
            a_all = c
        else:
            a_all = F.normalize(features.to(dtype), dim=-1).transpose(0, 1).reshape(views * bsz, -1)
        c_ood = contrast.is_ood.repeat(views) if has_ood else None
        group = self._groups(contrast, views)  # [V*M] positive-group id, -1: never a positive
        n_groups = int(group.max()) + 1
        group_or_spare = torch.where(group >= 0, group, n_groups)  # non-members go to a spare slot
        counts = torch.bincount(group_or_spare, minlength=n_groups + 1)
        counts[n_groups] = 0
        # the local views are columns v * M + offset + b
        local_cols = (torch.arange(views, device=device)[:, None] * m + contrast.offset
                      + torch.arange(bsz, device=device)[None, :]).reshape(-1)
        anchor_group = group_or_spare[local_cols]
        n_pos = (counts[anchor_group] - 1).clamp(min=0)
        keep = n_pos > 0
        if not bool(keep.all()):
            if not bool(keep.any()):
                return features.sum().to(dtype) * 0.0  # no anchor with a positive: 0, zero grads, graph kept
            idx = keep.nonzero().flatten()
            a_all, local_cols = a_all.index_select(0, idx), local_cols[idx]
            anchor_group, n_pos = anchor_group[idx], n_pos[idx]
        a = a_all / self.temperature

        # positives: sum_p s_ip = a_i . (sum of the group's contrast features) - s_ii
        sums = torch.zeros(n_groups + 1, c.shape[1], dtype=dtype, device=device).index_add(0, group_or_spare, c)
        pos_sum = (a * (sums.index_select(0, anchor_group) - a_all)).sum(-1)
        fill = partial(self._fill_denominators, anchor_cols=local_cols, c_ood=c_ood, contrast=contrast,
                       views=views)
        lse = _MaskedLogSumExp.apply(a, c, fill)
        loss = (lse - pos_sum / n_pos.to(dtype)).mean()
        scale = self.temperature / self.base_temperature if self.base_temperature is not None else 1.0
        return loss * scale

    def _groups(self, contrast: Contrast, views: int) -> Tensor:
        """Positive-group id per contrast column: views with the same id are each other's positives."""
        m = contrast.features.shape[0]
        sample = torch.arange(m, device=contrast.features.device)
        if contrast.labels is None:
            key = sample  # SimCLR: the image is the group
        else:
            labels = contrast.labels.long()
            key = labels - labels.min()
        if contrast.is_ood is not None:
            # OOD images are their own group ("instance") or in no group at all (never positives)
            key = torch.where(contrast.is_ood, key.max() + 1 + sample, key)
        group = torch.unique(key, return_inverse=True)[1]
        if contrast.is_ood is not None and self.ood_policy != "instance":
            group = torch.where(contrast.is_ood, -1, group)
        if contrast.mixed_classes is not None:  # left out of the positives: in no group
            group = torch.where(contrast.mixed_classes[:, 0] >= 0, -1, group)
        return group.repeat(views)

    def _fill_denominators(self, logits: Tensor, a: Tensor, c: Tensor, *, anchor_cols: Tensor,
                           c_ood: Tensor | None, contrast: Contrast, views: int) -> None:
        """Turn raw logits [anchors, contrast] into denominator logits, in place: the self-pair and
        excluded OOD entries become -inf, weighted OOD negatives get + log(ood_weight)."""
        rows = torch.arange(anchor_cols.numel(), device=logits.device)
        logits[rows, anchor_cols] = -math.inf
        if contrast.mixed_classes is not None:
            # a left-out mixed image of classes (i, j) is no negative of anchors labelled i or j
            pair = contrast.mixed_classes.long().repeat(views, 1)
            anchor_label = contrast.labels.long().repeat(views)[anchor_cols][:, None]
            partial_member = (pair[None, :, 0] >= 0) & ((pair[None, :, 0] == anchor_label)
                                                        | (pair[None, :, 1] == anchor_label))
            logits.masked_fill_(partial_member, -math.inf)
        if c_ood is None:
            return
        if self.ood_policy == "hard":
            anchor_label = contrast.labels.long().repeat(views)[anchor_cols]
            col_source = contrast.source_labels.long().repeat(views)
            logits.masked_fill_(c_ood[None, :] & (col_source[None, :] != anchor_label[:, None]), -math.inf)
        if self.ood_weight == 1.0:
            return
        bias = math.log(self.ood_weight) if self.ood_weight > 0 else -math.inf
        logits.add_(torch.where(c_ood, bias, 0.0).to(logits.dtype))
        if self.ood_policy == "instance":
            # an OOD anchor's own other views are its positives, not weighted negatives: restore them
            m = contrast.features.shape[0]
            ood_rows = c_ood[anchor_cols].nonzero().flatten()
            if ood_rows.numel():
                own = torch.arange(views, device=c.device)[None, :] * m + (anchor_cols[ood_rows] % m)[:, None]
                r = ood_rows[:, None].expand_as(own)
                not_self = own != anchor_cols[ood_rows][:, None]
                r, own = r[not_self], own[not_self]
                logits[r, own] = (a[r] * c[own]).sum(-1)


class _MaskedLogSumExp(torch.autograd.Function):
    """lse_i = log sum_j exp(fill(a c^T)_ij), built in one [anchors, contrast] buffer updated in place.

    ``fill`` only adds constants or -inf to entries (or restores them to a_i . c_j), so d lse_i / d(a_i . c_j)
    is the softmax P_ij. The buffer ends up holding P, the only tensor of that size kept for backward.
    """

    @staticmethod
    def forward(ctx, a: Tensor, c: Tensor, fill: Callable[[Tensor, Tensor, Tensor], None]) -> Tensor:  # type: ignore[override]
        buf = a @ c.T
        fill(buf, a, c)
        peak = buf.amax(dim=1, keepdim=True)
        total = buf.sub_(peak).exp_().sum(dim=1, keepdim=True)
        prob = buf.div_(total)  # softmax over the denominator set
        ctx.save_for_backward(a, c, prob)
        return (total.log_() + peak).squeeze(1)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        a, c, prob = ctx.saved_tensors
        weighted = prob * grad[:, None]
        grad_a = weighted @ c if ctx.needs_input_grad[0] else None
        grad_c = weighted.T @ a if ctx.needs_input_grad[1] else None
        return grad_a, grad_c, None


def _check(features: Tensor, labels: Tensor | None, is_ood: Tensor | None, source_labels: Tensor | None,
           what: str) -> None:
    if not isinstance(features, Tensor) or features.dim() != 3:
        shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
        raise ValueError(f"{what}features must be a [batch, views, dim] tensor, got {shape}")
    if not features.dtype.is_floating_point:
        raise ValueError(f"{what}features must be floating point, got {features.dtype}")
    bsz = features.shape[0]
    for name, t in (("labels", labels), ("source_labels", source_labels)):
        if t is None:
            continue
        if t.shape != (bsz,) or t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
            raise ValueError(f"{what}{name} must be an integer tensor of shape [{bsz}], "
                             f"got {t.dtype} {tuple(t.shape)}")
    if is_ood is not None and (is_ood.shape != (bsz,) or is_ood.dtype != torch.bool):
        raise ValueError(f"{what}is_ood must be a bool tensor of shape [{bsz}], got {is_ood.dtype} "
                         f"{tuple(is_ood.shape)} (OOD status is a flag, never a label value)")


def _check_mixed(features: Tensor, labels: Tensor | None, mixed: Tensor | None, what: str) -> None:
    if mixed is None:
        return
    bsz = features.shape[0]
    if mixed.shape != (bsz, 2) or mixed.dtype.is_floating_point or mixed.dtype == torch.bool:
        raise ValueError(f"{what}mixed_classes must be an integer tensor of shape [{bsz}, 2], "
                         f"got {mixed.dtype} {tuple(mixed.shape)}")
    if labels is None:
        raise ValueError(f"{what}mixed_classes needs labels (SimCLR has no classes to leave out)")


def _check_contrast(features: Tensor, labels: Tensor | None, is_ood: Tensor | None,
                    source_labels: Tensor | None, contrast: Contrast) -> None:
    bsz, views, dim = features.shape
    cf = contrast.features
    if cf.shape[1:] != (views, dim):
        raise ValueError(f"contrast features {tuple(cf.shape)} do not match features {tuple(features.shape)}")
    if not 0 <= contrast.offset <= cf.shape[0] - bsz:
        raise ValueError(f"contrast offset {contrast.offset} does not place {bsz} samples inside {cf.shape[0]}")
    for name, local, gathered in (("labels", labels, contrast.labels), ("is_ood", is_ood, contrast.is_ood),
                                  ("source_labels", source_labels, contrast.source_labels)):
        if (local is None) != (gathered is None):
            raise ValueError(f"{name} must be given for both the batch and the contrast set, or neither")


# ------------------------------------------------------------------------------------------ distributed
class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the gradients of all processes and returns the local slice."""

    @staticmethod
    def forward(ctx, tensor: Tensor, sizes: list[int]) -> Tensor:  # type: ignore[override]
        import torch.distributed as dist

        ctx.sizes, ctx.rank = sizes, dist.get_rank()
        padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        import torch.distributed as dist

        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start: start + ctx.sizes[ctx.rank]], None


def _gather_plain(t: Tensor, sizes: list[int]) -> Tensor:
    import torch.distributed as dist

    padded = t.new_zeros((max(sizes), *t.shape[1:]))
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)])


def gather_for_contrast(features: Tensor, labels: Tensor | None = None, is_ood: Tensor | None = None,
                        source_labels: Tensor | None = None, mixed_classes: Tensor | None = None
                        ) -> Contrast | None:
    """Gather every process's batch as the contrast set; None when not running distributed.

    The gathered features carry gradient back to every process (the backward sums all processes'
    gradients), so each process's loss is the loss of its own anchors against the global batch and
    DDP's gradient averaging yields the gradient of the global mean. Batches may differ in size.
    Usage in a training loop (every process, every step)::

        contrast = gather_for_contrast(feats, labels, is_ood, source_labels)
        loss = criterion(feats, labels, is_ood, source_labels, contrast=contrast)
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    world, rank = dist.get_world_size(), dist.get_rank()
    n = torch.tensor([features.shape[0]], device=features.device)
    all_n = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(all_n, n)
    sizes = [int(x.item()) for x in all_n]
    gathered = _GatherWithGrad.apply(features, sizes)

    def plain(t: Tensor | None) -> Tensor | None:
        return None if t is None else _gather_plain(t, sizes)

    return Contrast(gathered, plain(labels), plain(is_ood), plain(source_labels), sum(sizes[:rank]),
                    plain(mixed_classes))
