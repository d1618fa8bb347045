"""``dsc baseline``: the cross-entropy baseline, same encoder + one linear layer trained end to end.

Same data options as ``pretrain``: ``--synthetic-policy extra`` adds synthetic images as samples of their
class; ``view`` replaces a real image, with probability p, by one of its synthetic variants (DA-Fusion's
rule). ``--negatives`` need ``--ood-loss``: ``extra-class`` trains OOD rows as class K (evaluation uses the
K real classes' logits), ``outlier-exposure`` adds ``ood_weight`` x cross-entropy of OOD rows against the
uniform distribution. Mixed images (``diff-mix``, ``mix_weight`` w > 0) train on their soft label
(1 - w) onehot(i) + w onehot(j), the cross-entropy -sum_c q_c log p_c (dsc/train/mixing.py); every other
image keeps its hard label. The best epoch by val top-1 is evaluated once on test into ``RUN/metrics.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dsc import few_shot
from dsc.arms import arm_label
from dsc.outputs import atomic_write_json
from dsc.provenance import now
from dsc.settings import BaselineSettings
from dsc.train.checkpoint import load_checkpoint
from dsc.train.common import Context, Result, Task, TrainData, train
from dsc.train.mixing import SeenCounter, soft_targets
from dsc.train.run_dir import RunDir, read_run_info

log = logging.getLogger(__name__)


class FirstK(nn.Module):
    """The logits of the K real classes of a classifier (drops the extra OOD class)."""

    def __init__(self, classifier: nn.Module, k: int) -> None:
        super().__init__()
        self.classifier, self.k = classifier, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x)[:, : self.k]


class ClassifierNet(nn.Module):
    def __init__(self, encoder: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.encoder, self.classifier = encoder, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x))


class Frozen(nn.Module):
    """An encoder that stays as it is (``--protocol linear``): no gradients, and always in eval mode, so its
    BatchNorm statistics do not move either; the loop's ``model.train()`` leaves it in eval mode."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> Frozen:
        super().train(False)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.encoder(x)


class BaselineTask(Task):
    command = "baseline"
    val_key = "val_top1"

    def __init__(self, backbone, data: TrainData, settings: BaselineSettings) -> None:
        self.backbone, self.data, self.settings = backbone, data, settings
        self.k = len(data.classes)
        out = self.k + (1 if settings.ood_loss == "extra-class" else 0)
        if settings.protocol == "linear" and not (settings.pretrained or settings.checkpoint):
            log.warning("--protocol linear trains a linear layer on a randomly initialised, frozen encoder: "
                        "pass --pretrained or --checkpoint for the frozen-features baseline")
        encoder = Frozen(backbone.module) if settings.protocol == "linear" else backbone.module
        self.net = ClassifierNet(encoder, nn.Linear(backbone.feature_dim, out))
        self.soft, self._seen, self._env = data.has_mixed(), SeenCounter(), None

    def parts(self) -> dict[str, nn.Module]:
        return {"encoder": self.backbone.module, "classifier": self.net.classifier}   # (unwrapped when frozen)

    def record(self) -> dict[str, Any]:
        """``soft_labels`` in run.json (runs with mixed images): how many training images have a soft label."""
        if not self.soft:
            return {}
        data = self.data
        n = int(data.pool.mixed[:data.n_pos].sum()) + (int(data.synthetic.mixed.sum()) if data.variants is not None else 0)
        return {"soft_labels": {"images": n}}

    def prepare(self, rows: torch.Tensor, ctx: Context) -> dict[str, torch.Tensor]:
        """One view per row (a synthetic variant with probability p under ``view``, with the variant's soft
        label), on the device."""
        pool = self.data.pool
        images, replaced, syn_rows = self.data.pick_variants(rows, pool.images[rows],
                                                             self.settings.synthetic_probability, ctx.aug_gen)
        dev = ctx.env.device
        batch = {"x": ctx.views(ctx.to_device(images), ctx.aug_gen), "labels": pool.labels[rows].to(dev),
                 "is_ood": pool.is_ood[rows].to(dev)}
        if self.soft:
            self._env = ctx.env
            source, other, weight = pool.source_label[rows], pool.other_label[rows], pool.mix_weight[rows]
            if replaced is not None and bool(replaced.any()):
                syn, pick = self.data.synthetic, syn_rows[replaced]
                source, other, weight = source.clone(), other.clone(), weight.clone()
                source[replaced], other[replaced] = syn.source_label[pick], syn.other_label[pick]
                weight[replaced] = syn.mix_weight[pick]
            self._seen.add(soft_images_seen=int((weight > 0).sum()))
            batch.update(source=source.to(dev), other=other.to(dev), weight=weight.to(dev))
        return batch

    def compute(self, model: nn.Module, batch: dict[str, torch.Tensor], ctx: Context) -> torch.Tensor:
        with torch.autocast(ctx.env.device.type, dtype=ctx.amp, enabled=ctx.amp is not None):
            logits = model(batch["x"])
        return self._ce(logits.float(), batch)

    def _ce(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss of a batch's logits: cross-entropy (soft targets for mixed rows) and the OOD term."""
        labels, is_ood, s = batch["labels"], batch["is_ood"], self.settings
        # soft targets only for batches holding a mixed image: other batches run exactly the hard-label loss
        soft = "weight" in batch and bool((batch["weight"] > 0).any())
        if s.ood_loss == "extra-class":
            target = torch.where(is_ood, torch.full_like(labels, self.k), labels)
            return F.cross_entropy(logits, _targets(batch, target, soft, logits.shape[1]),
                                   label_smoothing=s.label_smoothing)
        ind = ~is_ood
        loss = F.cross_entropy(logits[ind], _targets(batch, labels, soft, logits.shape[1], ind),
                               label_smoothing=s.label_smoothing) if bool(ind.any()) else logits.sum() * 0
        if s.ood_loss == "outlier-exposure" and bool(is_ood.any()):
            # cross-entropy to the uniform distribution over the K classes
            loss = loss + s.ood_weight * (-F.log_softmax(logits[is_ood], dim=1).mean(dim=1)).mean()
        return loss

    @torch.no_grad()
    def logits(self, images: torch.Tensor, ctx: Context, batch_size: int = 256) -> torch.Tensor:
        net = self.net
        was = net.training
        net.eval()
        out = []
        for start in range(0, images.shape[0], batch_size):
            x = ctx.plain.plain(ctx.to_device(images[start:start + batch_size]))
            with torch.autocast(ctx.env.device.type, dtype=ctx.amp, enabled=ctx.amp is not None):
                out.append(net(x).float()[:, : self.k].cpu())
        net.train(was)
        return torch.cat(out) if out else torch.zeros(0, self.k)

    def epoch_stats(self) -> dict[str, Any]:
        """``soft_images_seen``: images with a soft label drawn into this round's batches (runs with any)."""
        return self._seen.pop(self._env, ("soft_images_seen",)) if self.soft else {}

    def validate(self, ctx: Context) -> float:
        if len(self.data.val) == 0:
            return float("nan")
        pred = self.logits(self.data.val.images, ctx).argmax(1)
        return round(float((pred == self.data.val.labels).float().mean()), 6)

    def finish(self, ctx: Context, run: RunDir, result: Result) -> None:
        """Evaluate the best-by-val checkpoint on test (once) and write ``RUN/metrics.json``."""
        if not ctx.env.main:
            return
        from dsc.evaluate.suite import EvalOptions, evaluate_classifier
        from dsc.store import open_store

        info = load_checkpoint(run.path, "best", self.parts(), device="cpu")
        self.net.eval()
        run_info = read_run_info(run.path)
        data = open_store(run_info["inputs"]["data"]["path"], kind="data")
        head = FirstK(self.net.classifier, self.k)
        opts = EvalOptions(image_size=self.settings.image_size, seed=self.settings.seed, device=ctx.env.device)
        if not self.settings.corruptions:
            opts.corruptions = ()
        eval_result = evaluate_classifier(self.backbone, head, data, classes=self.data.classes, options=opts)
        val = {"top1": info.get(self.val_key), "n": len(self.data.val)}
        metrics = metrics_document(run_info, self.settings, val=val, selected_epoch=info["epoch"],
                                   timings={"train": result.timings.get("train", 0.0),
                                            "evaluate": eval_result.get("timings", {}).get("evaluate", 0.0)},
                                   evaluation=eval_result, metrics=result.metrics)
        atomic_write_json(run.path / "metrics.json", metrics)


def _targets(batch: dict[str, torch.Tensor], labels: torch.Tensor, soft: bool, n_out: int,
             rows: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy targets of ``rows`` (a mask; default all): the class indices ``labels``, or with ``soft``
    probability targets (soft labels for mixed rows, one-hot for the others)."""
    sel = (lambda t: t) if rows is None else (lambda t: t[rows])  # noqa: E731
    if not soft:
        return sel(labels)
    return soft_targets(sel(labels), sel(batch["source"]), sel(batch["other"]), sel(batch["weight"]), n_out)


def metrics_document(run_info: dict[str, Any], settings: BaselineSettings, *, val: dict[str, Any],
                     selected_epoch: int, timings: dict[str, float], evaluation: dict[str, Any],
                     metrics: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``RUN/metrics.json`` in the format of docs/run-format.md (method "ce"); ``metrics`` (the rows of
    metrics.jsonl) give the soft-labelled images seen, for runs with soft labels."""
    inputs = run_info["inputs"]
    synthetic = inputs.get("synthetic", [])
    negatives = inputs.get("negatives", [])
    label = arm_label(synthetic, negatives, settings.arm)
    doc: dict[str, Any] = {
        "schema": "dsc-metrics/1", "method": "ce", "run": Path(run_info.get("run_dir", "")).name or None,
        "seed": settings.seed, "backbone": settings.backbone,
        "data": {"path": inputs["data"]["path"], "fingerprint": inputs["data"]["fingerprint"]},
        "synthetic": {"normal": [s["fingerprint"] for s in synthetic], "ood": [s["fingerprint"] for s in negatives],
                      "policy": settings.synthetic_policy if synthetic else None,
                      "ood_policy": settings.ood_loss if negatives else None, "label": label},
        "classes": run_info.get("classes", []), "val": val,
    }
    if run_info.get("soft_labels"):
        seen = sum(int(r.get("soft_images_seen") or 0) for r in metrics or [])
        doc["synthetic"]["soft_labels"] = {**run_info["soft_labels"], "seen": seen}
    for key in ("test", "robustness", "ood"):
        if evaluation.get(key):
            doc[key] = evaluation[key]
    drawn = few_shot.record(settings.model_dump(mode="json"))
    if drawn:
        doc["few_shot"] = drawn
    doc.update({"timings": timings, "selected_epoch": selected_epoch, "created": now()})
    return doc


def baseline(data: Path, output: Path, settings: BaselineSettings, *, synthetic: Sequence[Path] = (),
             negatives: Sequence[Path] = (), sources: dict[str, str] | None = None, force: bool = False,
             resume: bool = False, stop_after: int | None = None) -> Result:
    """Run ``dsc baseline``; returns the run's result. Final test metrics are in ``RUN/metrics.json``."""
    return train(BaselineTask, "baseline", settings, sources or {}, Path(data), [Path(p) for p in synthetic],
                 [Path(p) for p in negatives], Path(output), force=force, resume=resume, stop_after=stop_after,
                 use_negatives=settings.ood_loss != "none",
                 extra_info={"method": "ce", "run_dir": str(Path(output).resolve()),
                             "synthetic_policy": settings.synthetic_policy if synthetic else None,
                             "ood_loss": settings.ood_loss if negatives else None})
