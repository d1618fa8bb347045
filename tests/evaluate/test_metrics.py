from __future__ import annotations

import numpy as np
import pytest
import torch

from dsc.evaluate.metrics import (
    classification_metrics,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
    per_class_accuracy,
    softmax,
    top_k_accuracy,
)

LOGITS = np.array([[2.0, 1, 0], [0, 3, 1], [1, 0, 2], [3, 2, 1]])
LABELS = np.array([0, 2, 2, 1])


def test_top_k_by_hand():
    assert top_k_accuracy(LOGITS, LABELS, 1) == 0.5  # rows 0 and 2
    assert top_k_accuracy(LOGITS, LABELS, 2) == 1.0  # row 1: 2 is second; row 3: 1 is second
    assert top_k_accuracy(LOGITS, LABELS, 5) == 1.0  # k capped at C
    assert top_k_accuracy(torch.tensor(LOGITS), torch.tensor(LABELS), 1) == 0.5


def test_confusion_per_class_and_macro_f1_by_hand():
    pred = LOGITS.argmax(1)  # [0, 1, 2, 0]
    cm = confusion_matrix(pred, LABELS, 3)
    assert cm.tolist() == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]
    assert per_class_accuracy(pred, LABELS, ["a", "b", "c"]) == {"a": 1.0, "b": 0.0, "c": 0.5}
    # F1: a = 2*1/(2*1+1+0) = 2/3, b = 0, c = 2*1/(2*1+0+1) = 2/3
    assert macro_f1(pred, LABELS, 3) == pytest.approx(4 / 9)


def test_macro_f1_matches_a_loop_and_skips_absent_classes():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    f1s = []
    for c in range(5):
        tp = np.sum((p == c) & (y == c))
        fp, fn = np.sum((p == c) & (y != c)), np.sum((p != c) & (y == c))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    assert macro_f1(p, y, 5) == pytest.approx(np.mean(f1s))
    # class 2 neither true nor predicted: averaged over classes 0 and 1 only
    assert macro_f1([0, 1], [0, 1], 3) == 1.0


def test_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.62, 0.38], [0.3, 0.7]])
    y = np.array([0, 1, 0, 0])
    # bins: {0.9, 0.9}: acc 0.5 conf 0.9; {0.62}: acc 1; {0.7}: acc 0
    expected = 0.5 * 0.4 + 0.25 * 0.38 + 0.25 * 0.7
    assert expected_calibration_error(probs, y) == pytest.approx(expected)
    assert expected_calibration_error(np.eye(3), [0, 1, 2]) == 0.0
    # one bin only: |acc - mean conf|
    assert expected_calibration_error(probs, y, bins=1) == pytest.approx(abs(0.5 - np.mean([0.9, 0.9, 0.62, 0.7])))


def test_classification_metrics_block():
    m = classification_metrics(LOGITS, LABELS, ["a", "b", "c"])
    assert set(m) == {"top1", "top5", "macro_f1", "ece", "n", "per_class", "confusion"}
    assert m["n"] == 4 and m["top1"] == 0.5
    assert m["ece"] == pytest.approx(expected_calibration_error(softmax(LOGITS), LABELS))
    with pytest.raises(ValueError, match="labels"):
        classification_metrics(LOGITS, [0, 1, 2, -1], ["a", "b", "c"])
    with pytest.raises(ValueError, match="shape"):
        classification_metrics(LOGITS, LABELS, ["a", "b"])
