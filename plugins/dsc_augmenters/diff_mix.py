"""Diff-Mix's inter-class strategy (Wang et al., CVPR 2024): a train image of class i edited toward class j's
prompt at strength s (image-to-image, as DA-Fusion), labelled with the soft target
``(1 - s**gamma) * y_i + s**gamma * y_j``.

The family (``family = "mix"``) tells `dsc augment` to draw the partner class j per image and to store the
soft label (``mix_weight``, docs/store-format.md); this module only chooses the class words. With ``--tokens``
(any `dsc invert` method: learned tokens, LoRA, both) prompts carry the learned class tokens, as Diff-Mix's
fine-tuned ``diff-mix``; without, the plain class names, as its ``real-mix`` (the stock model).
"""

from __future__ import annotations

from typing import Any, ClassVar

from dsc.contracts import AugmenterPlugin, SDComponents
from dsc_augmenters.dafusion import DaFusionAugmenter, DaFusionOptions


class TokensOrNamesAugmenter(DaFusionAugmenter):
    """The DA-Fusion family with ``--tokens`` optional: learned tokens (and whatever `dsc invert` saved with them)
    when given, else the class names (no inversion needed)."""

    def _named(self) -> bool:
        return self.options.tokens is None

    def check(self, class_names: list[str]) -> None:
        if not self._named():
            super().check(class_names)

    def prepare(self, components: SDComponents, class_names: list[str]) -> dict[str, Any]:
        if self._named():
            return {"class_words": "class names (no --tokens)"}
        return super().prepare(components, class_names)

    def class_phrase(self, class_name: str) -> str:
        if self._named():
            return AugmenterPlugin.class_phrase(self, class_name)
        return super().class_phrase(class_name)

    def encode(self, components: SDComponents, prompts: list[str]) -> Any:
        if self._named():
            return AugmenterPlugin.encode(self, components, prompts)
        return super().encode(components, prompts)


class DiffMixAugmenter(TokensOrNamesAugmenter):
    """Image of class i edited toward class j's prompt, soft label (Diff-Mix; --tokens optional)."""

    name = "diff-mix"
    summary = "Image of class i edited toward class j's prompt, soft label (Diff-Mix; --tokens optional)"
    Options = DaFusionOptions
    family: ClassVar[str] = "mix"
