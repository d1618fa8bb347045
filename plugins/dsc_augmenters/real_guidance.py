"""Real Guidance's strategy (He et al., 2023): the class name itself is the prompt, no inversion."""

from __future__ import annotations

from dsc.contracts import AugmenterPlugin


class RealGuidanceAugmenter(AugmenterPlugin):
    """Image-to-image variants prompted with the class name (no token learning needed)."""

    name = "real-guidance"
    summary = "Image-to-image variants prompted with the class name (no inversion needed)"
