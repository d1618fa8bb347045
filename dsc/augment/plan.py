"""The plan: which real images are sources and what every synthetic image is (source row, variant, seed,
strength, partner class), a pure function of DATA.h5 and the settings. Image k is the same whatever the batch
size or the number of interruptions: each has its own generator, seeded from (seed, role, source row,
variant), so a normal and an OOD store made with the same ``--seed`` never share an image."""

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
    other_label: int = -1  # class whose prompt replaces or blends with the source's (other-class, blend)


def seed_role(mode: str, ood_strategy: str) -> str:
    """The part of an image's seed that comes from its role: "normal", or "ood:<strategy>"."""
    return resolve(mode, ood_strategy).seed_role


def image_seed(seed: int, mode: str, ood_strategy: str, source_index: int, variant: int) -> int:
    """The seed of one synthetic image: a hash of (seed, mode, OOD strategy, source row, variant), 63 bits.

    The mode and OOD strategy enter the hash, so stores of different roles made with the same ``--seed`` draw
    other noise, strengths and partner classes for the same source image (they can never be copies). The OOD
    strategy is ignored in normal mode.
    """
    role = int.from_bytes(hashlib.blake2b(seed_role(mode, ood_strategy).encode(), digest_size=8).digest(), "big")
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


def plan_images(rows: np.ndarray, labels: np.ndarray, settings: AugmentSettings,
                class_ids: list[int]) -> list[Planned]:
    """Every synthetic image, in output order (source by source, variant by variant)."""
    strengths = np.asarray(settings.strength, dtype=np.float64)
    probs = settings.strength_probs
    needs_other = resolve(settings.mode, settings.ood_strategy).needs_other_class
    out: list[Planned] = []
    for row in rows.tolist():
        label = int(labels[row])
        others = [c for c in class_ids if c != label]
        for v in range(settings.per_image):
            seed = image_seed(settings.seed, settings.mode, settings.ood_strategy, row, v)
            rng = np.random.default_rng(seed)  # strength and partner class: drawn from the image's own seed
            strength = float(strengths[rng.choice(len(strengths), p=probs)]) if len(strengths) > 1 else \
                float(strengths[0])
            other = int(others[rng.integers(len(others))]) if needs_other else -1
            out.append(Planned(row, v, label, seed, strength, other))
    return out
