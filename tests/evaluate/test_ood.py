from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from dsc.evaluate.ood import auroc, energy_score, fpr_at_tpr, knn_score, msp_score, ood_detection


def test_auroc_perfect_reversed_equal_and_mann_whitney():
    assert auroc([3, 4, 5], [0, 1, 2]) == 1.0
    assert auroc([0, 1, 2], [3, 4, 5]) == 0.0
    assert auroc([1, 1], [1, 1]) == 0.5
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 10, 300), rng.integers(2, 12, 200)  # many ties
    u = mannwhitneyu(a, b, alternative="two-sided").statistic
    assert auroc(a, b) == pytest.approx(u / (len(a) * len(b)))
    # brute force P(a > b) + 0.5 P(a == b)
    brute = ((a[:, None] > b[None]).mean() + 0.5 * (a[:, None] == b[None]).mean())
    assert auroc(a, b) == pytest.approx(brute)


def test_fpr95_by_hand():
    scores_in = np.arange(1, 101)  # 95 % of them are >= 6
    assert fpr_at_tpr(scores_in, [0, 5, 6, 7, 200]) == pytest.approx(3 / 5)
    assert fpr_at_tpr(scores_in, [-1, 0]) == 0.0
    assert fpr_at_tpr([1, 2, 3], [10, 20]) == 1.0


def test_random_scores_are_chance():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=20000), rng.normal(size=20000)
    assert auroc(a, b) == pytest.approx(0.5, abs=0.01)
    assert fpr_at_tpr(a, b) == pytest.approx(0.95, abs=0.01)


def test_scores_by_hand():
    logits = np.array([[0.0, 0.0], [10.0, 0.0]])
    np.testing.assert_allclose(msp_score(logits), [0.5, 1 / (1 + np.exp(-10))])
    np.testing.assert_allclose(energy_score(logits), [np.log(2), 10 + np.log(1 + np.exp(-10))])
    train = np.array([[1.0, 0.0], [0.0, 2.0]])
    # scale-invariant (normalised): a training direction has distance 0 to its nearest neighbour
    np.testing.assert_allclose(knn_score([[5.0, 0.0], [1.0, 1.0]], train, k=1), [0.0, -np.sqrt(2 - np.sqrt(2))],
                               atol=1e-6)
    # k = 2: the farther training point
    np.testing.assert_allclose(knn_score([[1.0, 0.0]], train, k=2), [-np.sqrt(2)], atol=1e-6)
    assert knn_score([[1.0, 0.0]], train, k=50).shape == (1,)  # k capped


def test_ood_detection_structure_and_separation():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 8)) + 5
    in_feats, out_feats = rng.normal(size=(30, 8)) + 5, rng.normal(size=(20, 8)) - 5
    in_logits = np.c_[np.full(30, 8.0), np.zeros(30)]
    out_logits = np.zeros((20, 2))
    res = ood_detection(in_logits, out_logits, in_features=in_feats, out_features=out_feats, train_features=train)
    assert set(res) == {"msp", "energy", "knn"}
    for score in res.values():
        assert score["auroc"] == 1.0 and score["fpr95"] == 0.0 and score["n_in"] == 30 and score["n_out"] == 20
    assert set(ood_detection(in_logits, out_logits)) == {"msp", "energy"}
