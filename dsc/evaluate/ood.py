"""Out-of-distribution detection: scores (MSP, energy, k-NN distance) and their AUROC / FPR at 95 % TPR.

Convention: every score is *higher for in-distribution*; in-distribution samples are the positives.
Definitions are in docs/evaluation.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dsc.evaluate.metrics import _np, softmax

KNN_K = 5
SCORES = ("msp", "energy", "knn")


def msp_score(logits: Any) -> np.ndarray:
    """Maximum softmax probability (Hendrycks & Gimpel, 2017)."""
    return softmax(logits).max(axis=1)


def energy_score(logits: Any, temperature: float = 1.0) -> np.ndarray:
    """Negative energy ``T * logsumexp(logits / T)`` (Liu et al., 2020); higher means in-distribution."""
    z = _np(logits).astype(np.float64) / temperature
    m = z.max(axis=1, keepdims=True)
    return temperature * (m[:, 0] + np.log(np.exp(z - m).sum(axis=1)))


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_score(features: Any, train_features: Any, k: int = KNN_K, chunk: int = 4096) -> np.ndarray:
    """Minus the Euclidean distance to the k-th nearest training feature, all L2-normalised (Sun et al., 2022).

    ``k`` is capped at the number of training features.
    """
    q = _l2_normalise(_np(features).astype(np.float32))
    bank = _l2_normalise(_np(train_features).astype(np.float32))
    if len(bank) == 0:
        raise ValueError("k-NN score needs at least one training feature")
    k = max(1, min(k, len(bank)))
    out = np.empty(len(q), dtype=np.float64)
    for start in range(0, len(q), chunk):
        sim = q[start:start + chunk] @ bank.T  # cosine similarity; distance^2 = 2 - 2 sim
        kth = -np.partition(-sim, k - 1, axis=1)[:, k - 1]
        out[start:start + chunk] = -np.sqrt(np.maximum(2.0 - 2.0 * kth.astype(np.float64), 0.0))
    return out


def auroc(scores_in: Any, scores_out: Any) -> float:
    """Area under the ROC curve with in-distribution as positives: P(s_in > s_out) + 0.5 P(s_in = s_out)."""
    a, b = _np(scores_in).astype(np.float64).ravel(), _np(scores_out).astype(np.float64).ravel()
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    allv = np.concatenate([a, b])
    # average ranks (ties share their mean rank): Mann-Whitney U
    order = np.argsort(allv, kind="mergesort")
    sorted_v = allv[order]
    ranks = np.empty(len(allv), dtype=np.float64)
    bounds = np.flatnonzero(np.diff(sorted_v)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(allv)]])
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e - 1) / 2.0 + 1.0
    u = ranks[: len(a)].sum() - len(a) * (len(a) + 1) / 2.0
    return float(u / (len(a) * len(b)))


def fpr_at_tpr(scores_in: Any, scores_out: Any, tpr: float = 0.95) -> float:
    """False-positive rate at the highest threshold t that keeps at least ``tpr`` of in-distribution.

    t is the ceil(tpr * n_in)-th largest in-distribution score; FPR = share of OOD scores >= t.
    """
    a, b = _np(scores_in).astype(np.float64).ravel(), _np(scores_out).astype(np.float64).ravel()
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    k = max(1, math.ceil(tpr * len(a) - 1e-9))
    threshold = np.sort(a)[::-1][k - 1]
    return float((b >= threshold).mean())


def detection_metrics(scores_in: Any, scores_out: Any) -> dict[str, float]:
    """``{"auroc", "fpr95", "n_in", "n_out"}`` for one score."""
    return {"auroc": auroc(scores_in, scores_out), "fpr95": fpr_at_tpr(scores_in, scores_out, 0.95),
            "n_in": int(len(_np(scores_in))), "n_out": int(len(_np(scores_out)))}


def ood_scores(logits: Any, features: Any | None = None, train_features: Any | None = None,
               k: int = KNN_K) -> dict[str, np.ndarray]:
    """All available scores for a set: msp and energy from logits, knn when features are given."""
    out = {"msp": msp_score(logits), "energy": energy_score(logits)}
    if features is not None and train_features is not None:
        out["knn"] = knn_score(features, train_features, k=k)
    return out


def ood_detection(in_logits: Any, out_logits: Any, *, in_features: Any | None = None,
                  out_features: Any | None = None, train_features: Any | None = None,
                  k: int = KNN_K) -> dict[str, dict[str, float]]:
    """One ``ood`` entry of metrics.json: ``{"msp": {...}, "energy": {...}, "knn": {...}}``.

    The k-NN score is included only when in/out/train features are all given.
    """
    s_in = ood_scores(in_logits, in_features, train_features, k)
    s_out = ood_scores(out_logits, out_features, train_features, k)
    return {name: detection_metrics(s_in[name], s_out[name]) for name in SCORES if name in s_in and name in s_out}
