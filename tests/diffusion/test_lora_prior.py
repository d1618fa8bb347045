"""`dsc invert --method lora|ti+lora --prior-preservation` (DreamBooth's prior preservation) on the tiny model:
the class images are the stock pipeline's, their loss enters with its weight, provenance, resume, mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dsc.diffusion import invert as I
from dsc.diffusion import lora, prior
from dsc.errors import ConfigError
from dsc.settings import InvertSettings
from dsc.testing import square_store

from .test_lora import FAST, _class_latents, _jobs, interrupted

PRIOR = dict(prior_preservation=True, prior_images=2, prior_steps=3)


def _settings(tiny_sd_path: Path, **kw) -> InvertSettings:
    return InvertSettings(model=str(tiny_sd_path), **{**FAST, "method": "lora", **PRIOR, **kw})


def test_class_images_are_the_stock_pipeline_s_for_their_seeds(components, tiny_sd_path: Path) -> None:
    from diffusers import StableDiffusionPipeline

    settings = _settings(tiny_sd_path)
    images = prior.generate_prior(components, _jobs(["gear"]), settings)
    assert images["gear"].shape == (2, 64, 64, 3) and images["gear"].dtype == np.uint8
    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd_path), safety_checker=None,
                                                   requires_safety_checker=False)
    for k, seed in enumerate(prior.prior_seeds(settings, 0)):
        ref = pipe(prior.prior_prompt("gear"), height=64, width=64, num_inference_steps=3, guidance_scale=7.5,
                   generator=torch.Generator().manual_seed(seed), output_type="np").images[0]
        assert np.abs(images["gear"][k].astype(int) - (ref * 255).round().astype(int)).max() <= 1


def test_the_class_images_loss_enters_with_its_weight(tiny_sd_path: Path, tmp_path: Path) -> None:
    """At step 0 the LoRA is the identity (B = 0) and the real images' draws do not depend on the class images
    (own generators), so the first loss is a + w * b: equal steps from w = 0 (no prior) to 1 to 2."""
    from dsc.testing import load_tiny_sd

    first = []
    for w in (None, 1.0, 2.0):
        c = load_tiny_sd(tiny_sd_path)
        latents, priors = [_class_latents(c, seed=s) for s in (0, 1)], [_class_latents(c, seed=s) for s in (2, 3)]
        kw = dict(prior_weight=w) if w else dict(prior_preservation=False, prior_images=100, prior_steps=50)
        res = lora.train_joint(c, _jobs(), latents, _settings(tiny_sd_path, steps=1, **kw), tmp_path / str(w),
                               prior=priors if w else None)
        first.append(res.losses[0])
    a, b = first[0], first[1] - first[0]
    assert b > 0 and first[2] == pytest.approx(a + 2 * b, rel=1e-5)


def test_cli_records_the_class_images_and_keeps_none_of_them(run_dsc, tmp_path: Path, tiny_sd_path: Path) -> None:
    data = square_store(tmp_path / "data.h5")
    common = ["invert", data, "--model", tiny_sd_path, "--steps", 2, "--resolution", 64, "--batch-size", 2,
              "--method", "ti+lora", "--num-vectors", 1, "--prior-images", 2, "--prior-steps", 2]
    res = run_dsc(*common, "--prior-preservation", "--prior-weight", 0.5, "--output", tmp_path / "tok", "--json")
    assert res.code == 0, res
    man = json.loads(res.out)
    p = man["lora"]["prior"]
    assert p["images_per_class"] == 2 and p["weight"] == 0.5 and p["steps"] == 2 and len(p["sha256"]) == 64
    assert p["prompts"] == {"brake caliper": "a photo of a brake caliper", "gear": "a photo of a gear"}
    assert not (tmp_path / "tok" / prior.PRIOR_FILE).exists() and not (tmp_path / "tok.partial").exists()
    again = run_dsc(*common, "--prior-preservation", "--prior-weight", 0.5, "--output", tmp_path / "tok2", "--json")
    assert json.loads(again.out)["lora"]["prior"]["sha256"] == p["sha256"]  # same seed, same class images
    assert json.loads(again.out)["lora"]["loss"] == man["lora"]["loss"]
    text = run_dsc(*common, "--prior-preservation", "--output", tmp_path / "tok3")
    assert text.code == 0 and "prior preservation: 2 class images per class" in text.out, text
    for args, msg in [((), "--prior-images, --prior-steps set without --prior-preservation"),
                      (("--method", "textual-inversion", "--prior-preservation"), "does not use")]:
        bad = run_dsc(*common, *args, "--output", tmp_path / "bad")
        assert bad.code == 1 and msg in bad.err and "Traceback" not in bad.err, (args, bad)


def test_resume_reuses_the_class_images_and_equals_uninterrupted(tmp_path: Path, tiny_sd_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tiny_sd_path, method="ti+lora", steps=5, num_vectors=2, lora_lr=1e-2)
    data, full = interrupted(tmp_path, settings, monkeypatch)
    assert (tmp_path / "tok.partial" / prior.PRIOR_FILE).is_file()
    monkeypatch.setattr(prior, "generate_prior", lambda *a, **k: pytest.fail("generated the class images again"))
    resumed = I.run_invert(data, tmp_path / "tok", settings, resume=True, show_progress=False)
    assert resumed.lora["resumed_from"] == 2 and resumed.lora["loss"] == full.lora["loss"]
    assert (tmp_path / "tok" / lora.LORA_FILE).read_bytes() == (tmp_path / "full" / lora.LORA_FILE).read_bytes()
    assert resumed.lora["prior"] == full.lora["prior"]


def test_prior_settings_are_in_the_resume_view_only_when_on(tiny_sd_path: Path) -> None:
    assert "prior_weight" in _settings(tiny_sd_path).resume_view()
    assert not any(k.startswith("prior_") for k in _settings(tiny_sd_path, prior_preservation=False).resume_view())
    assert not any(k.startswith("prior_") for k in InvertSettings().resume_view())
    with pytest.raises(ConfigError, match="without --prior-preservation"):
        from dsc.diffusion.lora_options import check_method_options

        check_method_options(InvertSettings(method="lora", prior_weight=2.0))
