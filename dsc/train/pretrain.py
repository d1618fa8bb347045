"""``dsc pretrain``: supervised contrastive pre-training (SupCon) with synthetic positives and OOD negatives.

Encoder + MLP head (dim_in -> hidden -> head_dim, as in SupContrast), L2-normalised projections, two views
per image, :class:`dsc.losses.SupConLoss` over the features gathered from all processes. With
``--synthetic-policy view`` the second view of a real image is, with probability p, made from one of its own
synthetic variants. OOD rows (``is_ood``) come from ``--negatives`` stores only. Mixed images (soft labels,
``diff-mix``) get a label or are left out of the positives by ``--mix-label`` (dsc/train/mixing.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dsc.data.samplers import VariantIndex
from dsc.losses import Contrast, SupConLoss, gather_for_contrast
from dsc.settings import PretrainSettings
from dsc.train.common import Context, Result, Task, TrainData, train
from dsc.train.knn import encode, knn_top1
from dsc.train.mixing import SeenCounter, rule_counts, supcon_labels, view_usable

log = logging.getLogger(__name__)


HEADS = ("mlp-bn", "mlp")


class ProjectionHead(nn.Module):
    """The projection head; ``kind`` picks the layers.

    - ``mlp-bn`` (dsc's default): Linear, BatchNorm, ReLU, Linear, BatchNorm without affine (the projectors
      of SimCLR v2 and MoCo v3). The last BatchNorm keeps the projections centred with a fixed scale, so they
      cannot all sit at one point and the gradient through the L2 normalisation keeps its size.
    - ``mlp``: SupContrast's head, Linear, ReLU, Linear. From a random init on small data it falls into the
      identical-projection state and stays there (docs/training.md, "Collapse").
    """

    def __init__(self, dim_in: int, head_dim: int = 128, hidden: int | None = None, kind: str = "mlp") -> None:
        super().__init__()
        if kind not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {kind!r}")
        hidden = hidden or dim_in
        self.kind = kind
        if kind == "mlp":
            self.net = nn.Sequential(nn.Linear(dim_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, head_dim))
        else:
            self.net = nn.Sequential(nn.Linear(dim_in, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                     nn.Linear(hidden, head_dim, bias=False), nn.BatchNorm1d(head_dim, affine=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SupConNet(nn.Module):
    """Encoder + head; returns L2-normalised projections (float32)."""

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.encoder(x)).float(), dim=1)


COLLAPSED_COS = 0.95  # mean cosine between different images' projections above which a run has collapsed


class _Health:
    """Per-epoch running means of the projections' mean pairwise cosine and of the collapse loss, kept as
    device tensors so the training step never waits for the device; read once per epoch in ``pop``."""

    def __init__(self) -> None:
        self.cos_sum: torch.Tensor | float = 0.0
        self.collapsed_sum: torch.Tensor | float = 0.0
        self.n = 0

    def add(self, feats: torch.Tensor, collapsed: torch.Tensor) -> None:
        z = F.normalize(feats[:, 0].float(), dim=1)
        n = z.shape[0]
        if n > 1:
            total = z.sum(0)
            self.cos_sum = self.cos_sum + (total @ total - n) / (n * (n - 1))
            self.collapsed_sum = self.collapsed_sum + collapsed
            self.n += 1

    def pop(self) -> dict[str, float]:
        out = {} if self.n == 0 else {"proj_cos": round(float(self.cos_sum) / self.n, 4),
                                      "loss_collapsed": round(float(self.collapsed_sum) / self.n, 6)}
        self.__init__()
        return out


class PretrainTask(Task):
    command = "pretrain"
    val_key = "val_knn_top1"

    def __init__(self, backbone, data: TrainData, settings: PretrainSettings) -> None:

        self.data, self.settings = data, settings
        head = ProjectionHead(backbone.feature_dim, settings.head_dim, settings.head_hidden, kind=settings.head)
        self.net = SupConNet(backbone.module, head)
        self.criterion = SupConLoss(temperature=settings.temperature, base_temperature=settings.base_temperature,
                                    ood_policy=settings.ood_policy, ood_weight=settings.ood_weight)
        self._health, self._warned, self._collapsed_rounds, self._last_stats = _Health(), False, 0, {}
        self.mixing, self._seen, self._env = data.has_mixed(), SeenCounter(), None
        if self.mixing:
            self._apply_mix_rule()

    def _apply_mix_rule(self) -> None:
        """``--mix-label`` on the pool (each row's SupCon label, the rows left out of the positives) and, under
        ``view``, on the variants: only those the rule keeps as their source class become second views."""
        data, s = self.data, self.settings
        pool = data.pool
        self.labels, self.mixed_classes = supcon_labels(pool.labels, pool.source_label, pool.other_label,
                                                        pool.mix_weight, s.mix_label, s.mix_threshold)
        # what run.json counts: the mixed rows of the pool (extra), or of the variants (view: the pool is real)
        rows = data.synthetic if data.variants is not None else pool
        labels, pairs = (self.labels, self.mixed_classes) if rows is pool else supcon_labels(
            rows.labels, rows.source_label, rows.other_label, rows.mix_weight, s.mix_label, s.mix_threshold)
        self._counts = rule_counts(rows.mix_weight, rows.source_label, labels, pairs)
        if data.variants is not None:   # only variants the rule keeps as their source class become views
            data.variants = VariantIndex(rows.source_index, usable=view_usable(
                rows.source_label, rows.other_label, rows.mix_weight, s.mix_label, s.mix_threshold))

    def record(self) -> dict:
        """``mix_label`` in run.json (runs with mixed images): the rule, its threshold and what it did with the
        mixed images (``as_source``, ``as_other``, ``left_out``; under ``view`` only ``as_source`` become views)."""
        if not self.mixing:
            return {}
        s = self.settings
        return {"mix_label": {"rule": s.mix_label, "threshold": s.mix_threshold if s.mix_label == "dominant"
                              else None, **self._counts}}

    def parts(self) -> dict[str, nn.Module]:
        return {"encoder": self.net.encoder, "head": self.net.head}

    def prepare(self, rows: torch.Tensor, ctx: Context) -> dict[str, torch.Tensor]:
        """Two views of each row (the second from a synthetic variant under ``view``), on the device."""
        pool = self.data.pool
        first = pool.images[rows]
        second, replaced, syn_rows = self.data.pick_variants(rows, first, self.settings.synthetic_probability,
                                                             ctx.aug_gen)
        dev = ctx.env.device
        batch = {"x": ctx.views(ctx.to_device(torch.cat([first, second])), ctx.aug_gen),
                 "labels": pool.labels[rows].to(dev), "is_ood": pool.is_ood[rows].to(dev),
                 "source": pool.source_label[rows].to(dev)}
        if self.mixing:
            self._env = ctx.env
            mixed = self.mixed_classes[rows]
            views = 0 if replaced is None else int((replaced & self.data.synthetic.mixed[syn_rows]).sum())
            self._seen.add(mixed_seen=int(pool.mixed[rows].sum()) + views,
                           mixed_left_out_seen=int((mixed[:, 0] >= 0).sum()))
            batch.update(labels=self.labels[rows].to(dev), mixed=mixed.to(dev))
        return batch

    def compute(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> torch.Tensor:
        with torch.autocast(ctx.env.device.type, dtype=ctx.amp, enabled=ctx.amp is not None):
            z = model(batch["x"])
        n = z.shape[0] // 2
        feats = torch.stack([z[:n], z[n:]], dim=1)  # [n, 2, D]
        labels, is_ood, source, mixed = batch["labels"], batch["is_ood"], batch["source"], batch.get("mixed")
        # under DDP: this process's anchors against every process's views (gradients flow back to all)
        contrast = gather_for_contrast(feats, labels, is_ood, source, mixed)
        loss = self.criterion(feats, labels=labels, is_ood=is_ood, source_labels=source, contrast=contrast,
                              mixed_classes=mixed)
        with torch.no_grad():
            self._health.add(feats.detach(), self._collapsed_loss(feats, labels, is_ood, source, contrast, mixed))
        return loss

    def _collapsed_loss(self, feats, labels, is_ood, source, contrast, mixed=None) -> torch.Tensor:
        """The loss this batch would have if every projection were the same point (the collapse value)."""
        same = torch.ones_like(feats[:1, :1]).expand_as(feats)
        if contrast is not None:
            contrast = Contrast(torch.ones_like(contrast.features[:1, :1]).expand_as(contrast.features),
                                contrast.labels, contrast.is_ood, contrast.source_labels, contrast.offset,
                                contrast.mixed_classes)
        return self.criterion(same, labels=labels, is_ood=is_ood, source_labels=source, contrast=contrast,
                              mixed_classes=mixed).detach()

    def epoch_stats(self) -> dict[str, float]:
        """``proj_cos`` (mean cosine between projections of different images: 1 means collapsed) and
        ``loss_collapsed`` (the loss of identical projections on the same batches). Early rounds often pass
        near the collapsed point on the way down and leave it later, so the warning is given only when the
        run ends collapsed (``end``)."""
        stats = self._health.pop()
        self._collapsed_rounds = self._collapsed_rounds + 1 if stats.get("proj_cos", 0.0) > COLLAPSED_COS else 0
        self._last_stats = stats
        if self.mixing:  # mixed images drawn into this round's batches, and how many of them were left out
            return {**stats, **self._seen.pop(self._env, ("mixed_seen", "mixed_left_out_seen"))}
        return stats

    def end(self) -> None:
        if self._collapsed_rounds:
            self._warn_collapsed(self._last_stats)

    def _warn_collapsed(self, stats: dict[str, float]) -> None:
        if self._warned:
            return
        self._warned = True
        log.warning("the run ended with its projections collapsed to one point (mean cosine %.3f; the loss of "
                    "identical projections is %.4f): the encoder did not learn; see docs/training.md, 'Collapse' "
                    "(lighter --augmentation, --head mlp-bn, more steps)", stats["proj_cos"], stats["loss_collapsed"])

    def validate(self, ctx: Context) -> float:
        data, enc = self.data, self.net.encoder
        if len(data.val) == 0:
            return float("nan")
        bank = encode(enc, data.pool.images[:data.n_real], ctx.plain.plain, ctx.env.device,
                      autocast_dtype=ctx.amp)
        query = encode(enc, data.val.images, ctx.plain.plain, ctx.env.device, autocast_dtype=ctx.amp)
        return round(knn_top1(bank, data.pool.labels[:data.n_real], query, data.val.labels, k=self.settings.knn_k), 6)


def pretrain(data: Path, output: Path, settings: PretrainSettings, *, synthetic: Sequence[Path] = (),
             negatives: Sequence[Path] = (), sources: dict[str, str] | None = None, force: bool = False,
             resume: bool = False, stop_after: int | None = None) -> Result:
    """Run ``dsc pretrain``; returns the run's result (metrics per epoch, best epoch)."""
    policy = settings.synthetic_policy if synthetic else None
    return train(PretrainTask, "pretrain", settings, sources or {}, Path(data), [Path(p) for p in synthetic],
                 [Path(p) for p in negatives], Path(output), force=force, resume=resume, stop_after=stop_after,
                 extra_info={"method": "supcon", "synthetic_policy": policy,
                             "ood_policy": settings.ood_policy if negatives else None})
