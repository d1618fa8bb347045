from __future__ import annotations

import pytest

from dsc.arms import ARMS, arm_label


@pytest.mark.parametrize("normal, ood, label", [
    ([], [], "none"), (["fp-n"], [], "normal"), ([], ["fp-o"], "ood"), (["fp-n"], ["fp-o"], "normal+ood")])
def test_arm_label_names_what_was_used(normal, ood, label):
    assert arm_label(normal, ood) == label and label in ARMS
