"""The plan: which real images are sources and what every synthetic image is (source row, variant, seed,
strength, partner class, mix weight), a pure function of DATA.h5 and the settings. Image k is the same whatever
the batch size or the number of interruptions: each has its own generator, seeded from (seed, role, source row,
variant), so a normal and an OOD store made with the same ``--seed`` never share an image.

The strategy's family (``dsc.augment.families``) shapes the plan: ``img2img`` (variants of each source image),
``mix`` (Diff-Mix: each variant edited toward a partner class j drawn from the image's own seed, soft label
weight ``s ** gamma``), ``text`` (no source: ``source_index`` -1, strength 1.0, ``M`` images per class)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from dsc.augment.ood import resolve
from dsc.settings import AugmentSettings

#: What ``image_seed`` hashes, in order (recorded in every synthetic store as ``seed_derivation``).
SEED_INPUTS = ("base_seed", "mode", "ood_strategy", "source_index", "variant")
#: Where ``seed_derivation`` says the seed function lives (the name ``dsc.augment`` exports).
SEED_FUNCTION = "dsc.augment.image_seed"


@dataclass
class Planned:
    """One synthetic image: where it comes from and what conditions it."""

    source_index: int
    variant: int
    source_label: int
    seed: int
    strength: float
    other_label: int = -1  # class whose prompt replaces or blends with the source's (other-class, blend, mix)
    mix_weight: float = 0.0  # weight of other_label in the soft target (diff-mix: strength ** gamma)

    @property
    def label(self) -> int:
        """The dominant class of the soft target: ``other_label`` when its weight is >= 0.5 (a tie goes to the
        class whose prompt made the image), else the source class."""
        return self.other_label if self.other_label >= 0 and self.mix_weight >= 0.5 else self.source_label


def seed_role(mode: str, ood_strategy: str) -> str:
    """The part of an image's seed that comes from its role: "normal", or "ood:<strategy>"."""
    return resolve(mode, ood_strategy).seed_role


def image_seed(seed: int, mode: str, ood_strategy: str, source_index: int, variant: int, *,
               family: str = "img2img") -> int:
    """The seed of one synthetic image: a hash of (seed, mode, OOD strategy, source row, variant), 63 bits.

    The mode and OOD strategy enter the hash, so stores of different roles made with the same ``--seed`` draw
    other noise, strengths and partner classes for the same source image (they can never be copies). The OOD
    strategy is ignored in normal mode. A ``mix`` or ``text`` family adds ``:<family>`` to the role; a
    source-free (``text``) image passes its class in place of ``source_index``.
    """
    name = seed_role(mode, ood_strategy) + ("" if family == "img2img" else f":{family}")
    role = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")
    state = np.random.SeedSequence([seed, role, source_index, variant]).generate_state(2, np.uint32)
    return int((int(state[0]) << 32 | int(state[1])) & ((1 << 63) - 1))


def select_sources(labels: np.ndarray, split: np.ndarray, settings: AugmentSettings,
                   class_ids: list[int]) -> np.ndarray:
    """Rows of ``settings.split`` of the chosen classes; a seeded few-shot subset per class when asked.

    The few-shot draw is dsc's one draw (``dsc.few_shot``), so with the same seed and ``--examples-per-class``
    the variants come from the images the tokens were learned on (and a few-shot run is trained on).
    """
    from dsc.few_shot import draw

    return draw(labels, split, class_ids, settings.examples_per_class, settings.few_shot_draw_seed,
                settings.split)


def plan_images(rows: np.ndarray, labels: np.ndarray, settings: AugmentSettings, class_ids: list[int], *,
                family: str = "img2img", pairs: np.ndarray | None = None) -> list[Planned]:
    """Every synthetic image, in output order (source by source, variant by variant; ``text``: class by class).

    ``pairs`` (``mix`` only): row ``i`` gives the probabilities of each partner class j for a source of class i
    (``dsc.augment.pairs``); None: j uniform over the other chosen classes."""
    if family == "text":
        return _plan_text(rows, labels, settings, class_ids)
    strengths = np.asarray(settings.strength, dtype=np.float64)
    probs = settings.strength_probs
    needs_other = family == "mix" or resolve(settings.mode, settings.ood_strategy).needs_other_class
    out: list[Planned] = []
    for row in rows.tolist():
        label = int(labels[row])
        others = [c for c in class_ids if c != label]
        p_other = None if pairs is None else pairs[label, others] / pairs[label, others].sum()
        for v in range(settings.per_image):
            seed = image_seed(settings.seed, settings.mode, settings.ood_strategy, row, v, family=family)
            rng = np.random.default_rng(seed)  # strength and partner class: drawn from the image's own seed
            strength = float(strengths[rng.choice(len(strengths), p=probs)]) if len(strengths) > 1 else \
                float(strengths[0])
            other = -1
            if needs_other:  # uniform: the draw dsc always made; by confusion: weighted
                other = int(others[rng.integers(len(others)) if p_other is None else rng.choice(len(others),
                                                                                                p=p_other)])
            weight = strength ** settings.gamma if family == "mix" and settings.gamma is not None else 0.0
            out.append(Planned(row, v, label, seed, strength, other, weight))
    return out


def per_class_counts(rows: np.ndarray, labels: np.ndarray, settings: AugmentSettings,
                     class_ids: list[int]) -> dict[int, int]:
    """Images per class of a source-free plan: ``per_class``, else ``per_image`` x the class's source images
    (the number an image-to-image strategy makes from the same sources: equal budgets)."""
    if settings.per_class is not None:
        return {c: settings.per_class for c in class_ids}
    found = labels[rows]
    return {c: settings.per_image * int((found == c).sum()) for c in class_ids}


def _plan_text(rows: np.ndarray, labels: np.ndarray, settings: AugmentSettings,
               class_ids: list[int]) -> list[Planned]:
    """Source-free images: ``source_index`` -1, strength 1.0, seeded from (seed, role, class, variant)."""
    out: list[Planned] = []
    for c, n in per_class_counts(rows, labels, settings, class_ids).items():
        for v in range(n):
            seed = image_seed(settings.seed, settings.mode, settings.ood_strategy, c, v, family="text")
            out.append(Planned(-1, v, c, seed, 1.0))
    return out
