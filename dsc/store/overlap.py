"""Synthetic images used both as positives and as negatives.

An OOD negative must never be a copy of a positive. Two images are the same when their content digests
(``/samples/digest``: blake2b of shape and pixels, in every store since schema 1) are equal, or when both
stores were made by the same generator (model, tokens, resolution, mask) and the two rows have the same
generation recipe (source row, seed, strength, prompt, guidance, steps, scheduler): such images differ at
most by floating-point rounding (a GPU can round differently from batch to batch). ``same_conditions``
counts the milder case: a negative made from a positive's source image with its prompt and strength and
only other noise, i.e. drawn from the positives' own distribution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsc.store.reader import Store

#: Per-row columns that, with the generator, determine a synthetic image (``seed`` is left out of conditions).
RECIPE = ("source_index", "seed", "strength", "prompt", "guidance", "steps", "scheduler")
CONDITIONS = tuple(c for c in RECIPE if c != "seed")


@dataclass(frozen=True)
class Overlap:
    """What the OOD rows of ``negatives`` share with the in-distribution rows of ``positives``."""

    positives: str
    negatives: str
    n_negatives: int
    shared: int            # negative rows that are a positive image (same pixels or same recipe)
    same_pixels: int
    same_recipe: int
    same_conditions: int   # negative rows made like a positive (same source, prompt, strength), other noise
    old_seeds: bool        # a store of schema 1: its seeds did not depend on the mode

    def record(self) -> dict[str, Any]:
        return asdict(self)

    def message(self) -> str:
        """One line naming both stores and the count."""
        return (f"{self.negatives} (--negatives) and {self.positives} (--synthetic) share {self.shared} of "
                f"{self.n_negatives} OOD images: the same images would be trained as positives and negatives")

    def hint(self) -> str:
        if self.old_seeds:
            return ("a dsc older than store schema 2 seeded both modes alike; regenerate the OOD store "
                    "(`dsc augment --mode ood ...`) with this dsc")
        return "regenerate the OOD store with other settings, or pass only one of the two stores"

    def conditions_warning(self) -> str:
        return (f"{self.same_conditions} of {self.n_negatives} OOD images in {self.negatives} were made from the "
                f"same source image, prompt and strength as images in {self.positives} (only the noise differs): "
                "these negatives are drawn from the positives' distribution; give OOD images a strength above "
                "every normal strength, or another --ood-strategy")


def _rows(store: Store, ood: bool) -> np.ndarray:
    is_ood = store.column("is_ood").astype(bool) if store.has("is_ood") else np.zeros(len(store), dtype=bool)
    return np.flatnonzero(is_ood if ood else ~is_ood)


def generator(store: Store) -> tuple[Any, ...]:
    """What, besides the per-row recipe, decides a store's images (compared between two stores)."""
    a = store.attrs
    inputs = a.get("inputs") if isinstance(a.get("inputs"), dict) else {}
    settings = a.get("settings") if isinstance(a.get("settings"), dict) else {}
    tokens = inputs.get("tokens_manifest") if isinstance(inputs.get("tokens_manifest"), dict) else {}
    return (inputs.get("data_fingerprint"), a.get("model_id"), a.get("model_revision"), tokens.get("sha256"),
            a.get("strategy"), *(settings.get(k) for k in ("resolution", "mask", "mask_dilation")))


def _keys(store: Store, rows: np.ndarray, columns: tuple[str, ...]) -> list[tuple[Any, ...]] | None:
    if not all(store.has(c) for c in columns):
        return None
    values = [store.column(c)[rows] for c in columns]
    return [tuple(v.item() if hasattr(v, "item") else v for v in row) for row in zip(*values, strict=True)]


def shared_images(positives: Store, negatives: Store) -> Overlap:
    """Compare the OOD rows of ``negatives`` with the in-distribution rows of ``positives``."""
    pos, neg = _rows(positives, ood=False), _rows(negatives, ood=True)
    pixels = np.isin(negatives.column("digest")[neg], positives.column("digest")[pos])
    recipe = np.zeros(len(neg), dtype=bool)
    conditions = np.zeros(len(neg), dtype=bool)
    if len(neg) and len(pos) and generator(positives) == generator(negatives):
        for columns, out in ((RECIPE, recipe), (CONDITIONS, conditions)):
            a, b = _keys(positives, pos, columns), _keys(negatives, neg, columns)
            if a is not None and b is not None:
                known = set(a)
                out[:] = [k in known for k in b]
    version = min(int(s.attrs.get("schema_version", 1)) for s in (positives, negatives))
    return Overlap(positives=str(positives.path), negatives=str(negatives.path), n_negatives=int(len(neg)),
                   shared=int((pixels | recipe).sum()), same_pixels=int(pixels.sum()), same_recipe=int(recipe.sum()),
                   same_conditions=int((conditions & ~(pixels | recipe)).sum()), old_seeds=version < 2)


def check_pairs(synthetic: list[Store], negatives: list[Store]) -> list[Overlap]:
    """Every (``--synthetic``, ``--negatives``) pair compared; the caller decides what to refuse."""
    return [shared_images(p, n) for n in negatives for p in synthetic]


def summary(overlaps: list[Overlap]) -> dict[str, Any]:
    """What run.json records under ``inputs.overlap`` (store paths absolute, as in ``inputs.synthetic``)."""
    pairs = [{**o.record(), "positives": str(Path(o.positives).resolve()),
              "negatives": str(Path(o.negatives).resolve())} for o in overlaps]
    return {"shared_images": sum(o.shared for o in overlaps),
            "same_conditions": sum(o.same_conditions for o in overlaps), "pairs": pairs}
