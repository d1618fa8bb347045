"""``dsc pretrain``: supervised contrastive pre-training (SupCon) with synthetic positives and OOD negatives.

Encoder + MLP head (dim_in -> hidden -> head_dim, as in SupContrast), L2-normalised projections, two views
per image, :class:`dsc.losses.SupConLoss` over the features gathered from all processes. With
``--synthetic-policy view`` the second view of a real image is, with probability p, made from one of its own
synthetic variants. OOD rows (``is_ood``) come from ``--negatives`` stores only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dsc.losses import SupConLoss, gather_for_contrast
from dsc.settings import PretrainSettings
from dsc.train.common import Context, Result, Task, TrainData, train
from dsc.train.knn import encode, knn_top1


class ProjectionHead(nn.Module):
    """SupContrast's MLP head: Linear(dim_in, hidden), ReLU, Linear(hidden, head_dim)."""

    def __init__(self, dim_in: int, head_dim: int = 128, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or dim_in
        self.net = nn.Sequential(nn.Linear(dim_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SupConNet(nn.Module):
    """Encoder + head; returns L2-normalised projections (float32)."""

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.encoder(x)).float(), dim=1)


class PretrainTask(Task):
    command = "pretrain"
    val_key = "val_knn_top1"

    def __init__(self, backbone, data: TrainData, settings: PretrainSettings) -> None:

        self.data, self.settings = data, settings
        head = ProjectionHead(backbone.feature_dim, settings.head_dim, settings.head_hidden)
        self.net = SupConNet(backbone.module, head)
        self.criterion = SupConLoss(temperature=settings.temperature, base_temperature=settings.base_temperature,
                                    ood_policy=settings.ood_policy, ood_weight=settings.ood_weight)

    def parts(self) -> dict[str, nn.Module]:
        return {"encoder": self.net.encoder, "head": self.net.head}

    def prepare(self, rows: torch.Tensor, ctx: Context) -> dict[str, torch.Tensor]:
        """Two views of each row (the second from a synthetic variant under ``view``), on the device."""
        pool = self.data.pool
        first = pool.images[rows]
        second = self.data.with_variants(rows, first, self.settings.synthetic_probability, ctx.aug_gen)
        dev = ctx.env.device
        return {"x": ctx.views(ctx.to_device(torch.cat([first, second])), ctx.aug_gen),
                "labels": pool.labels[rows].to(dev), "is_ood": pool.is_ood[rows].to(dev),
                "source": pool.source_label[rows].to(dev)}

    def compute(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> torch.Tensor:
        with torch.autocast(ctx.env.device.type, dtype=ctx.amp, enabled=ctx.amp is not None):
            z = model(batch["x"])
        n = z.shape[0] // 2
        feats = torch.stack([z[:n], z[n:]], dim=1)  # [n, 2, D]
        labels, is_ood, source = batch["labels"], batch["is_ood"], batch["source"]
        # under DDP: this process's anchors against every process's views (gradients flow back to all)
        contrast = gather_for_contrast(feats, labels, is_ood, source)
        return self.criterion(feats, labels=labels, is_ood=is_ood, source_labels=source, contrast=contrast)

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
