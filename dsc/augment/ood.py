"""What an image's role makes of it: one small object for normal mode and one per ``--ood-strategy``.

``resolve(mode, ood_strategy)`` gives the one :class:`Role` a job uses. Each role declares whether it is
OOD (label -1, ``is_ood``), whether it needs a second class (drawn per image, ``other_label``), its default
strength, the mask it implies, whether it must edit harder than the positives, its seed role (part of every
image's seed), and its conditioning: the prompt embeddings and recorded prompt text of one planned image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import numpy as np


class Prompts(Protocol):
    """What a role conditions with (``dsc.augment.conditioning.Conditioning``)."""

    blend_weight: float
    ood_prompt: str

    def embed(self, prompt: str) -> Any: ...

    def class_prompt(self, label: int) -> str: ...

    def cached(self, key: str, make: Callable[[], Any]) -> Any: ...


class Role:
    """Normal mode: in-distribution positives, labelled with their source class, the class's own prompt."""

    #: ``normal``, or the ``--ood-strategy`` value.
    name: ClassVar[str] = "normal"
    is_ood: ClassVar[bool] = False
    #: Draws a partner class per image (``other-class``, ``blend``): needs at least two classes.
    needs_other_class: ClassVar[bool] = False
    #: The strength when ``--strength`` is not given.
    default_strength: ClassVar[float] = 0.5
    #: The ``--mask`` the role implies (``object`` for ``inpaint-object``), None: the user's choice.
    mask: ClassVar[str | None] = None
    #: Same prompt as a positive, so only a stronger edit tells it apart (``strength``).
    needs_stronger_edit: ClassVar[bool] = False
    #: The filter threshold setting of this mode and which side of it is kept.
    threshold_setting: ClassVar[str] = "min_confidence"

    @property
    def needs_mask(self) -> bool:
        """Whether DATA.h5 must have object masks whatever ``--mask`` says."""
        return self.mask is not None

    @property
    def seed_role(self) -> str:
        """The part of every image's seed that comes from its role: ``normal`` or ``ood:<strategy>``."""
        return f"ood:{self.name}" if self.is_ood else "normal"

    @property
    def recorded_strategy(self) -> str:
        """The ``ood_strategy`` column and root attribute: the strategy, ``""`` for normal images."""
        return self.name if self.is_ood else ""

    def label(self, source_label: int) -> int:
        """The stored label: the source class, -1 for OOD images."""
        return -1 if self.is_ood else source_label

    def keep(self, scores: np.ndarray, threshold: float) -> np.ndarray:
        """Filter: normal images must still look like their source class (score >= X)."""
        return scores >= threshold

    def filter_rule(self, threshold: float) -> str:
        return f"keep score >= {threshold:g}"

    def condition(self, prompts: Prompts, source_label: int, other_label: int) -> tuple[Any, Any, str]:
        """(cond, uncond, recorded prompt) of one image: its own class's prompt."""
        own = prompts.class_prompt(source_label)
        return prompts.embed(own), prompts.embed(""), own


class _Ood(Role):
    """OOD negatives: label -1, ``is_ood``; the filter rejects images still confidently their source class."""

    is_ood = True
    default_strength = 0.75
    threshold_setting = "max_source_confidence"

    def keep(self, scores: np.ndarray, threshold: float) -> np.ndarray:
        """An "OOD" image the real-data classifier still puts in its source class above X is label noise."""
        return scores <= threshold

    def filter_rule(self, threshold: float) -> str:
        return f"keep score <= {threshold:g}"


class Strength(_Ood):
    """The study's approach: the source class's own prompt at a higher strength."""

    name = "strength"
    needs_stronger_edit = True


class OtherClass(_Ood):
    """Another class's prompt (drawn per image) at high strength: the layout, another class's look."""

    name = "other-class"
    needs_other_class = True

    def condition(self, prompts: Prompts, source_label: int, other_label: int) -> tuple[Any, Any, str]:
        other = prompts.class_prompt(other_label)
        return prompts.embed(other), prompts.embed(""), other


class InpaintObject(_Ood):
    """Keeps the background, repaints the object with ``--ood-prompt``, guided away from the source class
    (its prompt is the negative prompt)."""

    name = "inpaint-object"
    default_strength = 1.0
    mask = "object"

    def condition(self, prompts: Prompts, source_label: int, other_label: int) -> tuple[Any, Any, str]:
        own, neutral = prompts.class_prompt(source_label), prompts.ood_prompt
        return prompts.embed(neutral), prompts.embed(own), f"{neutral} [negative: {own}]"


class Blend(_Ood):
    """The prompt embedding ``(1-w)·E(own class) + w·E(other class)`` (text-encoder outputs)."""

    name = "blend"
    needs_other_class = True

    def condition(self, prompts: Prompts, source_label: int, other_label: int) -> tuple[Any, Any, str]:
        own, other, w = prompts.class_prompt(source_label), prompts.class_prompt(other_label), prompts.blend_weight
        mixed = prompts.cached(f"blend:{w}:{own}|{other}",
                               lambda: (1 - w) * prompts.embed(own) + w * prompts.embed(other))
        return mixed, prompts.embed(""), f"blend({w:g}): {own} | {other}"


#: ``--ood-strategy`` value -> its role (``--mode ood``).
OOD_STRATEGIES: dict[str, Role] = {r.name: r for r in (Strength(), OtherClass(), InpaintObject(), Blend())}
NORMAL = Role()


def resolve(mode: str, ood_strategy: str) -> Role:
    """The role of ``--mode`` and ``--ood-strategy`` (ignored in normal mode)."""
    if mode == "normal":
        return NORMAL
    if mode != "ood" or ood_strategy not in OOD_STRATEGIES:
        raise ValueError(f"no augment role for mode {mode!r} and OOD strategy {ood_strategy!r}")
    return OOD_STRATEGIES[ood_strategy]
