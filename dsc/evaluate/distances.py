"""Distances between feature sets (numpy, float64): Fréchet distance, KID, diversity and nearest neighbours.

Used by the synthetic-data quality assessment (``dsc.evaluate.quality``, docs/quality.md).
"""

from __future__ import annotations

import numpy as np


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float | None:
    """||mu_x - mu_y||^2 + tr(Sx + Sy - 2 (Sx^1/2 Sy Sx^1/2)^1/2); None for fewer than 2 rows each.

    With A, B the centred rows scaled by 1/sqrt(n-1) (Sx = A'A, Sy = B'B), the trace of the root equals the
    nuclear norm of A B' (the non-zero eigenvalues of Sx Sy are those of (A B')(A B')'), which is exact and
    much cheaper than a d x d matrix root when there are fewer images than feature dimensions.
    """
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        return None
    a = (x - x.mean(0)) / np.sqrt(m - 1)
    b = (y - y.mean(0)) / np.sqrt(n - 1)
    d = x.shape[1]
    if m * n <= d * d:
        cross = float(np.linalg.svd(a @ b.T, compute_uv=False).sum())
    else:
        root = _sqrtm_psd(a.T @ a)
        inner = root @ (b.T @ b) @ root
        cross = float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum())
    fd = float(((x.mean(0) - y.mean(0)) ** 2).sum() + (a ** 2).sum() + (b ** 2).sum() - 2 * cross)
    return max(fd, 0.0)


def kid(x: np.ndarray, y: np.ndarray) -> float | None:
    """Unbiased MMD^2 with the cubic polynomial kernel k(a, b) = (a.b / d + 1)^3 (Bińkowski et al.)."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        return None
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def pairwise(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Euclidean distances [len(x), len(y)]."""
    sq = (x ** 2).sum(1)[:, None] + (y ** 2).sum(1)[None, :] - 2 * x @ y.T
    return np.sqrt(np.clip(sq, 0, None))


def mean_pairwise_distance(x: np.ndarray) -> float | None:
    """Diversity: mean distance over distinct pairs (None for fewer than two rows)."""
    if len(x) < 2:
        return None
    d = pairwise(x, x)
    return float(d.sum() / (len(x) * (len(x) - 1)))


def nearest_distances(x: np.ndarray, ref: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """Distance of each row of ``x`` to its nearest row of ``ref`` (chunked)."""
    out = np.empty(len(x))
    for s in range(0, len(x), 1024):
        d = pairwise(x[s:s + 1024], ref)
        if exclude_self:
            idx = np.arange(s, min(s + 1024, len(x)))
            d[np.arange(len(idx)), idx] = np.inf
        out[s:s + 1024] = d.min(1) if d.shape[1] else np.inf
    return out
