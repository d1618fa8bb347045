"""What conditions a generation besides the noise: the prompt embeddings (each distinct prompt encoded once
per job; the role chooses which, ``dsc.augment.ood``), and the source pixels and edit masks at the
generation resolution."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dsc.augment.ood import Role
from dsc.augment.plan import Planned
from dsc.settings import AugmentSettings


class Conditioning:
    """Prompt embeddings, computed once per distinct prompt for the whole job (the role's ``Prompts``)."""

    def __init__(self, plugin: Any, components: Any, class_names: list[str], settings: AugmentSettings,
                 role: Role, family: str = "img2img") -> None:
        self.plugin, self.components, self.names, self.role = plugin, components, class_names, role
        self.family = family
        self.template = settings.prompt_template
        self.blend_weight = settings.blend_weight
        self.ood_prompt = settings.ood_prompt
        self._cache: dict[str, Any] = {}

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """The value kept under ``key``, made by ``make()`` the first time."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def embed(self, prompt: str) -> Any:
        """The text encoder's output for ``prompt``, on the UNet's device and dtype."""
        return self.cached(prompt, lambda: self.plugin.encode(self.components, [prompt])[0].to(
            device=self.components.device, dtype=self.components.unet.dtype))

    def class_prompt(self, label: int) -> str:
        """The augmenter's prompt for class ``label`` in ``--prompt-template``."""
        return self.plugin.prompt(self.template, self.names[label])

    def for_image(self, p: Planned) -> tuple[Any, Any, str]:
        """(cond, uncond, recorded prompt) of one planned image (Diff-Mix: the partner class's prompt)."""
        if self.family == "mix":
            target = self.class_prompt(p.other_label)
            return self.embed(target), self.embed(""), target
        return self.role.condition(self, p.source_label, p.other_label)


def resize(images: np.ndarray, size: int, *, mask: bool = False) -> np.ndarray:
    """Square ``size`` x ``size`` images (bicubic; masks nearest); unchanged when already that size."""
    from PIL import Image

    if images.shape[1] == size and images.shape[2] == size:
        return images
    resample = Image.NEAREST if mask else Image.BICUBIC
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), resample)) for im in images])


def edit_masks(masks: np.ndarray, mode: str, dilation: int) -> np.ndarray:
    """Where pixels may change: the object mask grown by ``dilation`` px (a square max filter, as DA-Fusion's
    16-px max filter) for ``object``, its complement for ``background``."""
    import torch

    obj = torch.from_numpy(masks >= 128 if masks.max(initial=0) > 1 else masks > 0).float()[:, None]
    if dilation > 0:
        obj = torch.nn.functional.max_pool2d(obj, kernel_size=2 * dilation + 1, stride=1, padding=dilation)
    grown = obj[:, 0].numpy() > 0.5
    return grown if mode == "object" else ~grown
