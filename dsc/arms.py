"""The arm of a run: which synthetic data it trained on, named from what it actually used.

One function so that training (``metrics.json``), the probe and the report can never disagree:
``none`` (real data only), ``normal`` (synthetic positives), ``ood`` (OOD negatives only) and
``normal+ood`` (both).
"""

from __future__ import annotations

ARMS = ("none", "normal", "ood", "normal+ood")


def arm_label(normal: object, ood: object) -> str:
    """The arm named by whether normal synthetic positives and OOD negatives were used (truthiness)."""
    if normal and ood:
        return "normal+ood"
    if normal:
        return "normal"
    if ood:
        return "ood"
    return "none"
