"""The linear probe: a linear classifier trained on fixed features, with two solvers.

- ``solver="sgd"`` (`dsc probe`): mini-batch SGD (momentum 0.9) with a cosine learning-rate schedule over
  ``epochs``; shuffling and initialisation come from a generator seeded with ``seed``; the epoch with the
  best val top-1 is kept (ties keep the earliest; without validation rows the last epoch).
- ``solver="lbfgs"`` (the real-data classifier of `dsc report --synthetic`): multinomial logistic regression
  by full-batch L-BFGS (strong Wolfe line search, ``steps`` iterations, deterministic) on standardised
  features, with an L2 penalty ``weight_decay * ||W||^2``.

Both return a :class:`LinearProbe`: the trained ``nn.Linear`` (CPU, eval mode) and ``predict_proba``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from dsc.errors import InputError
from dsc.evaluate.features import resolve_device
from dsc.threads import one_torch_thread

log = logging.getLogger(__name__)

Solver = Literal["sgd", "lbfgs"]


@dataclass
class LinearProbe:
    """A trained linear classifier; ``mean``/``scale`` standardise features first when set (L-BFGS)."""

    head: nn.Linear
    epoch: int = 0
    val_top1: float = float("nan")
    history: list[dict[str, Any]] = field(default_factory=list)
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities [N, C] (float64) of numpy features [N, D]."""
        if self.mean is not None:
            features = (features - self.mean) / self.scale
        x = torch.from_numpy(np.asarray(features)).float()
        with torch.no_grad():   # x @ W' + b, the same arithmetic the L-BFGS solver trained with
            z = x @ self.head.weight.T + self.head.bias
        return torch.softmax(z, dim=1).numpy().astype(np.float64)


def fit_linear(train_x: torch.Tensor | np.ndarray, train_y: torch.Tensor | np.ndarray, n_classes: int, *,
               solver: Solver = "sgd", val_x: torch.Tensor | None = None, val_y: torch.Tensor | None = None,
               epochs: int = 100, lr: float = 0.1, batch_size: int = 256, weight_decay: float = 0.0,
               steps: int = 50, seed: int = 0, device: str | None = None) -> LinearProbe:
    """Train a linear probe on features ``train_x`` [N, D] with labels ``train_y`` [N] (see the module doc).

    ``sgd`` uses ``val_x``/``val_y`` for selection, ``epochs``, ``lr``, ``batch_size`` and ``device``, and also
    takes probability targets ``train_y`` [N, n_classes] (soft labels: cross-entropy against them);
    ``lbfgs`` uses ``steps`` and takes numpy features and labels. Both use ``weight_decay`` and ``seed``.
    """
    if solver == "lbfgs" and np.asarray(train_y).ndim != 1:
        raise ValueError("the lbfgs solver takes class labels, not probability targets")
    if solver == "lbfgs":
        return _lbfgs(np.asarray(train_x), np.asarray(train_y), n_classes, weight_decay=weight_decay,
                      steps=steps, seed=seed)
    if solver != "sgd":
        raise ValueError(f"unknown solver {solver!r}")
    x, y = torch.as_tensor(train_x), torch.as_tensor(train_y)
    vx = x[:0] if val_x is None else val_x
    vy = y[:0] if val_y is None else val_y
    dev = resolve_device(device)
    with one_torch_thread() if dev.type == "cpu" else contextlib.nullcontext():
        return _sgd(x, y, vx, vy, n_classes, dev, epochs=epochs, lr=lr, batch_size=batch_size,
                    weight_decay=weight_decay, seed=seed)


def init_linear(dim: int, n_classes: int, gen: torch.Generator) -> nn.Linear:
    """A linear layer initialised like nn.Linear, but from an explicit generator."""
    layer = nn.Linear(dim, n_classes)
    bound = 1.0 / max(dim, 1) ** 0.5
    with torch.no_grad():
        layer.weight.copy_((torch.rand(layer.weight.shape, generator=gen) * 2 - 1) * bound)
        layer.bias.copy_((torch.rand(layer.bias.shape, generator=gen) * 2 - 1) * bound)
    return layer


def _top1(head: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy against labels ``y`` [N] (or probability targets [N, C]: their most likely class)."""
    y = y.argmax(1) if y.ndim == 2 else y
    if len(y) == 0:
        return float("nan")
    with torch.no_grad():
        return float((head(x).argmax(1) == y).float().mean())


def _sgd(train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor, n_classes: int,
         dev: torch.device, *, epochs: int, lr: float, batch_size: int, weight_decay: float, seed: int
         ) -> LinearProbe:
    gen = torch.Generator().manual_seed(seed)
    head = init_linear(train_x.shape[1], n_classes, gen).to(dev)
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    x, y = train_x.to(dev), train_y.to(dev)
    vx, vy = val_x.to(dev), val_y.to(dev)
    has_val = len(vy) > 0
    if not has_val:
        log.warning("no validation rows: keeping the last probe epoch (no model selection)")
    best_state, best_epoch, best_val = None, 0, -1.0
    history = []
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        head.train()
        order = torch.randperm(len(y), generator=gen).to(dev)
        total = 0.0
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            loss = loss_fn(head(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        rate = opt.param_groups[0]["lr"]
        sched.step()
        head.eval()
        val_top1 = _top1(head, vx, vy)
        history.append({"epoch": epoch, "loss": round(total / max(len(y), 1), 6), "lr": rate,
                        "train_top1": round(_top1(head, x, y), 6),
                        "val_top1": None if not has_val else round(val_top1, 6)})
        if not np.isfinite(total):
            raise InputError("the probe's loss became NaN/inf", hint="lower --lr")
        if (has_val and val_top1 > best_val) or (not has_val and epoch == epochs):
            best_val, best_epoch = val_top1, epoch
            best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
    assert best_state is not None  # at least one epoch ran (epochs >= 1 is validated)
    head.load_state_dict(best_state)
    return LinearProbe(head.eval().cpu(), best_epoch, best_val, history)


def _lbfgs(features: np.ndarray, labels: np.ndarray, n_classes: int, *, weight_decay: float, steps: int,
           seed: int) -> LinearProbe:
    mu = features.mean(0)
    sd = features.std(0) + 1e-6
    x = torch.from_numpy((features - mu) / sd).float()
    y = torch.from_numpy(labels.astype(np.int64))
    gen = torch.Generator().manual_seed(seed)
    w = (torch.randn(x.shape[1], n_classes, generator=gen) * 0.01).requires_grad_()
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w + b, y) + weight_decay * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    head = nn.Linear(x.shape[1], n_classes)
    head.weight = nn.Parameter(w.detach().T, requires_grad=False)   # a view: head.weight.T is w, same layout
    head.bias = nn.Parameter(b.detach(), requires_grad=False)
    return LinearProbe(head.eval(), mean=mu, scale=sd)
