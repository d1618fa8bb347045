"""The arm of a run: which synthetic data it trained on, named from what it actually used.

One function so that training (``metrics.json``), the probe and the report can never disagree:
``none`` (real data only), ``normal`` (synthetic positives), ``ood`` (OOD negatives only) and
``normal+ood`` (both). A run of a study's named arm (``[study.arms]``, the ``arm`` training setting) is
labelled with that name instead (``dafusion``, ``diff-mix``, ...).
"""

from __future__ import annotations

ARMS = ("none", "normal", "ood", "normal+ood")


def arm_label(normal: object, ood: object, name: str | None = None) -> str:
    """The arm named by whether normal synthetic positives and OOD negatives were used (truthiness), or
    ``name``, the study's name of the arm, when it has one."""
    if name:
        return name
    if normal and ood:
        return "normal+ood"
    if normal:
        return "normal"
    if ood:
        return "ood"
    return "none"
