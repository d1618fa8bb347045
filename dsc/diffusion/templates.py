"""Prompt templates for textual inversion. ``{}`` is replaced by the class token.

``dafusion`` is DA-Fusion's list (its ``textual_inversion_dataset.py``); ``diffusers-object`` is the list of
diffusers' ``textual_inversion.py`` example for objects (``imagenet_templates_small``). The two lists have the
same 27 texts today; both names exist so that a manifest says which reference a run follows. ``photo`` is the
single template that generation uses by default ("a photo of a {}").
"""

from __future__ import annotations

from dsc.errors import ConfigError

_IMAGENET_SMALL = (
    "a photo of a {}", "a rendering of a {}", "a cropped photo of the {}", "the photo of a {}",
    "a photo of a clean {}", "a photo of a dirty {}", "a dark photo of the {}", "a photo of my {}",
    "a photo of the cool {}", "a close-up photo of a {}", "a bright photo of the {}", "a cropped photo of a {}",
    "a photo of the {}", "a good photo of the {}", "a photo of one {}", "a close-up photo of the {}",
    "a rendition of the {}", "a photo of the clean {}", "a rendition of a {}", "a photo of a nice {}",
    "a good photo of a {}", "a photo of the nice {}", "a photo of the small {}", "a photo of the weird {}",
    "a photo of the large {}", "a photo of a cool {}", "a photo of a small {}",
)

TEMPLATES: dict[str, tuple[str, ...]] = {
    "dafusion": _IMAGENET_SMALL,
    "diffusers-object": _IMAGENET_SMALL,
    "photo": ("a photo of a {}",),
}


def templates(name: str) -> tuple[str, ...]:
    """The template list called ``name``."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ConfigError(f"unknown prompt templates {name!r}", hint=f"use one of {', '.join(TEMPLATES)}") from None
