"""Text-to-image (Diff-Mix's ``diff-gen``/``real-gen``, StableRep's synthetic images): images from the class prompt
alone, no source image, ``M`` per class.

The family (``family = "text"``) tells `dsc augment` to plan source-free images (``source_index`` -1, strength
1.0, generated as the stock ``StableDiffusionPipeline`` does); this module only chooses the class words: learned
tokens with ``--tokens`` (any `dsc invert` method), else the plain class names (a stock-model baseline).
"""

from __future__ import annotations

from typing import ClassVar

from dsc_augmenters.dafusion import DaFusionOptions
from dsc_augmenters.diff_mix import TokensOrNamesAugmenter


class TextToImageAugmenter(TokensOrNamesAugmenter):
    """Images from the class prompt alone, M per class (no source image; --tokens optional)."""

    name = "text-to-image"
    summary = "Images from the class prompt alone, M per class (no source image; --tokens optional)"
    Options = DaFusionOptions
    family: ClassVar[str] = "text"
