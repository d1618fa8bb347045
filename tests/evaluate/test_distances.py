"""Distances between feature sets (dsc.evaluate.distances): Fréchet distance, KID, diversity, nearest."""

from __future__ import annotations

import numpy as np
import pytest

from dsc.evaluate.distances import frechet_distance, kid, mean_pairwise_distance, nearest_distances


def test_frechet_distance_matches_matrix_root_formula():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    for m, n, d in ((8, 11, 40), (300, 250, 6)):          # fewer and more images than dimensions
        x, y = rng.normal(size=(m, d)), rng.normal(0.5, 1.5, size=(n, d))
        sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
        ref = ((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(sx + sy - 2 * linalg.sqrtm(sx @ sy).real)
        assert frechet_distance(x, y) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(x[:1], y) is None


def test_kid_is_unbiased_and_grows_with_shift():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    assert abs(kid(x, y)) < 0.05
    assert kid(x, y + 1.0) > 10 * abs(kid(x, y))
    assert kid(x[:1], y) is None


def test_diversity_and_nearest():
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert mean_pairwise_distance(x) == pytest.approx(5.0)
    assert mean_pairwise_distance(x[:1]) is None
    assert nearest_distances(np.array([[0.0, 1.0]]), x)[0] == pytest.approx(1.0)
    assert list(nearest_distances(x, x, exclude_self=True)) == [5.0, 5.0]
