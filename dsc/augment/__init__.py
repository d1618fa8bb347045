"""``dsc augment``: synthetic variants of real images, in-distribution (positives) or OOD (negatives).

One module per part (docs/commands/augment.md, docs/architecture.md):

- ``presets``: the settings a job runs with (``--preset``, the role's default strength and mask, the filter
  threshold): :func:`effective_settings`;
- ``ood``: the role of the images, one small object for normal mode and one per ``--ood-strategy``
  (``resolve(mode, ood_strategy)``): OOD or not, second class, default strength, mask, seed role, prompts;
- ``families``: how a strategy's images are planned (its plugin's ``family``: ``img2img``, ``mix`` for
  Diff-Mix's soft-labelled inter-class edits, ``text`` for source-free text-to-image), its options and defaults;
- ``pairs``: Diff-Mix's partner classes by the validation confusion of a real-data classifier;
- ``plan``: the source images and every synthetic image (source row, variant, seed, strength, partner class,
  mix weight; source-free images: row -1), a pure function of DATA.h5 and the settings (:func:`image_seed`);
- ``conditioning``: prompt embeddings (once per distinct prompt), resized sources and edit masks;
- ``job``: :class:`AugmentJob`, inputs checked, plan made, model loaded, batches generated, provenance;
- ``shards``: the partial output ``AUG.h5.shards/`` (one atomic file per batch) and its assembly into the
  store (``.partial``, then renamed);
- ``run``: :func:`run_augment`, the resumable shell (lock, processes, resume check, Ctrl-C, commit);
- ``preview``: :func:`run_preview`, a labelled grid of real images and their variants, no store.

The plan is a pure function of the settings and DATA.h5: image k is the same whatever the batch size or the
number of interruptions (one generator per image, seeded from (seed, mode, OOD strategy, source index,
variant), so a normal and an OOD store made with the same ``--seed`` never share an image).
"""

from __future__ import annotations

from dsc.augment.job import AugmentJob
from dsc.augment.ood import OOD_STRATEGIES, Role, resolve
from dsc.augment.plan import SEED_INPUTS, Planned, image_seed, plan_images, seed_role, select_sources
from dsc.augment.presets import (
    DEFAULT_MAX_SOURCE_CONFIDENCE,
    DEFAULT_MIN_CONFIDENCE,
    PRESETS,
    effective_settings,
)
from dsc.augment.preview import run_preview
from dsc.augment.run import AugmentResult, run_augment
from dsc.augment.shards import shard_dir

__all__ = [
    "DEFAULT_MAX_SOURCE_CONFIDENCE", "DEFAULT_MIN_CONFIDENCE", "OOD_STRATEGIES", "PRESETS", "SEED_INPUTS",
    "AugmentJob", "AugmentResult", "Planned", "Role", "effective_settings", "image_seed", "plan_images",
    "resolve", "run_augment", "run_preview", "seed_role", "select_sources", "shard_dir",
]
