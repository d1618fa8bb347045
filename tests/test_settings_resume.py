"""Each settings section declares which settings may differ when a job is resumed (``resume_free``)."""

from __future__ import annotations

from typing import Any

import pytest

from dsc.settings import (
    AugmentSettings,
    BaselineSettings,
    InvertSettings,
    PretrainSettings,
    ProbeSettings,
    Section,
    SubsetSettings,
    TrainSettings,
)

INVERT_RESUME_KEYS = ("model", "revision", "num_vectors", "initializer", "steps", "lr", "scale_lr",
                      "effective_batch", "lr_warmup", "resolution", "examples_per_class", "crop_to_object",
                      "templates", "flip", "seed", "few_shot_seed",   # (few_shot_seed: added 2026-12-03)
                      "method")   # (method: added with --method lora|ti+lora; their lora_* keys are free for TI)


@pytest.mark.parametrize(("section", "free"), [
    (TrainSettings(), {"workers"}),
    (PretrainSettings(), {"workers"}),
    (BaselineSettings(), {"workers"}),
    (AugmentSettings(), {"batch_size"}),
    (SubsetSettings(), {"workers"}),
    (ProbeSettings(), set()),
])
def test_resume_view_drops_exactly_the_free_keys(section: Section, free: set[str]) -> None:
    everything = section.model_dump(mode="json")
    assert free <= set(everything)
    assert section.resume_view() == {k: v for k, v in everything.items() if k not in free}


def _old_invert_rule(settings: dict[str, Any]) -> dict[str, Any]:
    """dsc/diffusion/invert.py's ``_settings_for_resume`` before the resume rule moved to the settings."""
    eff = (settings.get("batch_size") or 0) * (settings.get("gradient_accumulation") or 0)
    return {k: eff if k == "effective_batch" else settings.get(k) for k in INVERT_RESUME_KEYS}


@pytest.mark.parametrize("values", [{}, {"batch_size": 3, "gradient_accumulation": 4, "steps": 7, "device": "cpu",
                                         "validation_grids": True, "revision": "abc", "flip": False}])
def test_invert_resume_view_matches_the_old_include_list(values: dict[str, Any]) -> None:
    s = InvertSettings(**values)
    assert s.resume_view() == _old_invert_rule(s.model_dump(mode="json"))
    free = set(InvertSettings.model_fields) - set(s.resume_view())
    assert free == {"local_files_only", "device", "dtype", "batch_size", "gradient_accumulation",
                    "validation_grids", "validation_samples", "validation_steps",
                    "lora_rank", "lora_alpha", "lora_targets", "lora_lr",
                    "prior_preservation", "prior_images", "prior_weight", "prior_steps"}


def test_resume_free_settings_do_not_change_the_view() -> None:
    a, b = InvertSettings(batch_size=8, gradient_accumulation=1), InvertSettings(batch_size=4, gradient_accumulation=2)
    assert a.resume_view() == b.resume_view()
    assert InvertSettings(batch_size=4).resume_view() != a.resume_view()
    assert TrainSettings(workers=3).resume_view() == TrainSettings().resume_view()
    assert TrainSettings(seed=1).resume_view() != TrainSettings().resume_view()
    assert AugmentSettings(batch_size=2).resume_view() == AugmentSettings().resume_view()
