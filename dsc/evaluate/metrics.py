"""Classification metrics on predicted scores: top-1/top-5, macro-F1, ECE, per-class accuracy, confusion.

Every function takes ``logits`` (or probabilities) as an array-like [N, C] and integer ``labels`` [N]
(numpy arrays or torch tensors; computed in float64 numpy). Definitions are in docs/evaluation.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

ECE_BINS = 15


def _np(x: Any) -> np.ndarray:
    """A numpy copy of an array-like or torch tensor (detached, on CPU)."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


def softmax(logits: Any) -> np.ndarray:
    """Row-wise softmax in float64 (numerically stable)."""
    z = _np(logits).astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def top_k_accuracy(logits: Any, labels: Any, k: int = 1) -> float:
    """Share of rows whose true label is among the ``min(k, C)`` highest scores (ties: lower index first)."""
    scores, y = _np(logits), _np(labels).astype(np.int64)
    k = min(k, scores.shape[1])
    if len(y) == 0:
        return float("nan")
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((order == y[:, None]).any(axis=1).mean())


def confusion_matrix(pred: Any, labels: Any, num_classes: int) -> np.ndarray:
    """[C, C] int64 counts; rows are true classes, columns predicted classes."""
    p, y = _np(pred).astype(np.int64), _np(labels).astype(np.int64)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y, p), 1)
    return cm


def macro_f1(pred: Any, labels: Any, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over classes present in the labels or the predictions.

    F1 of a class is 2 TP / (2 TP + FP + FN) (0 when it is predicted but never true, or the reverse).
    """
    cm = confusion_matrix(pred, labels, num_classes)
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    present = (support + predicted) > 0
    if not present.any():
        return float("nan")
    f1 = 2 * tp[present] / (support[present] + predicted[present])
    return float(f1.mean())


def expected_calibration_error(probs: Any, labels: Any, bins: int = ECE_BINS) -> float:
    """ECE with ``bins`` equal-width confidence bins (lo, hi]: sum_b |B_b|/N * |acc(B_b) - conf(B_b)|.

    Confidence is the maximum class probability; accuracy is whether its arg-max is the label.
    """
    p, y = _np(probs).astype(np.float64), _np(labels).astype(np.int64)
    if len(y) == 0:
        return float("nan")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bin b holds conf in (edges[b], edges[b+1]]; conf == 0 (impossible for softmax) goes to bin 0
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def per_class_accuracy(pred: Any, labels: Any, classes: Sequence[str]) -> dict[str, float]:
    """Recall of each class by name; classes without test samples are left out."""
    p, y = _np(pred).astype(np.int64), _np(labels).astype(np.int64)
    out: dict[str, float] = {}
    for c, name in enumerate(classes):
        sel = y == c
        if sel.any():
            out[name] = float((p[sel] == c).mean())
    return out


def classification_metrics(logits: Any, labels: Any, classes: Sequence[str]) -> dict[str, Any]:
    """The ``test`` block of metrics.json: top1, top5, macro_f1, ece, n, per_class, confusion.

    ``logits`` are raw scores [N, C] (softmax is applied for ECE); ``labels`` in 0..C-1.
    """
    scores, y = _np(logits), _np(labels).astype(np.int64)
    n_cls = len(classes)
    if scores.ndim != 2 or scores.shape[1] != n_cls:
        raise ValueError(f"logits have shape {scores.shape}, expected [N, {n_cls}]")
    if len(y) and (y.min() < 0 or y.max() >= n_cls):
        raise ValueError("labels must lie in 0..C-1 (filter out held-out / OOD rows first)")
    pred = scores.argmax(axis=1)
    return {
        "top1": top_k_accuracy(scores, y, 1),
        "top5": top_k_accuracy(scores, y, 5),
        "macro_f1": macro_f1(pred, y, n_cls),
        "ece": expected_calibration_error(softmax(scores), y),
        "n": int(len(y)),
        "per_class": per_class_accuracy(pred, y, classes),
        "confusion": confusion_matrix(pred, y, n_cls).tolist(),
    }
