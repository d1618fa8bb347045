"""The built-in augmenter plugins: registered, light to import, prompts as stock diffusers builds them."""

from __future__ import annotations

import sys

import pytest
import torch

from dsc.registry import create, get_plugin
from dsc.testing import MASKED_CLASSES, write_tokens


def test_registered_and_light():
    for name in ("dafusion", "real-guidance"):
        cls = get_plugin("augmenter", name)
        assert cls.name == name and cls.summary
    # learned tokens are an option of the DA-Fusion family, not of the generic augmenter contract
    assert "tokens" in get_plugin("augmenter", "dafusion").Options.model_fields
    assert "tokens" not in get_plugin("augmenter", "real-guidance").Options.model_fields
    mods = [m for m in ("dsc_augmenters.dafusion", "dsc_augmenters.real_guidance") if m in sys.modules]
    assert mods  # imported above, without pulling diffusers in at import time of the module itself
    import dsc_augmenters.dafusion as d

    assert "torch" not in d.__dict__ and "diffusers" not in d.__dict__


def test_real_guidance_prompt_is_the_class_name():
    plugin = create("augmenter", "real-guidance")
    assert plugin.prompt("a photo of a {token}", "brake_caliper") == "a photo of a brake caliper"
    plugin.check(MASKED_CLASSES)
    assert plugin.prepare(None, MASKED_CLASSES) == {}


def test_dafusion_embeds_every_token_vector_as_stock_diffusers(tmp_path):
    from dsc.diffusion.models import load_components

    c = load_components("tiny", device="cpu")  # a fresh model: tokens are installed into it
    tokens = write_tokens(tmp_path / "T", c, MASKED_CLASSES, num_vectors=3)
    plugin = create("augmenter", "dafusion", {"tokens": tokens})
    plugin.check(MASKED_CLASSES)
    prov = plugin.prepare(c, MASKED_CLASSES)
    assert prov["tokens"]["brake_caliper"] == "<brake_caliper>" and len(prov["tokens_manifest"]["sha256"]) == 64
    prompt = plugin.prompt("a photo of a {token}", "brake_caliper")
    assert prompt == "a photo of a <brake_caliper>"
    ours = plugin.encode(c, [prompt])
    # stock: a fresh pipeline that loads the same files with load_textual_inversion
    fresh = load_components("tiny", device="cpu")
    pipe = fresh.pipeline("StableDiffusionPipeline")
    pipe.load_textual_inversion(str(tokens / "<brake_caliper>.safetensors"))
    ref, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
    torch.testing.assert_close(ours, ref)
    bare = plugin.encode(c, ["a photo of a"])
    assert not torch.allclose(ours, bare)


def test_dafusion_needs_tokens():
    from dsc.errors import InputError

    plugin = create("augmenter", "dafusion")
    with pytest.raises(InputError, match="--tokens"):
        plugin.check(MASKED_CLASSES)
    with pytest.raises(InputError, match="--tokens"):
        plugin.prepare(None, MASKED_CLASSES)


def test_dafusion_check_names_every_class_without_a_token(tmp_path):
    from dsc.diffusion.models import load_components
    from dsc.errors import DscError

    tokens = write_tokens(tmp_path / "T", load_components("tiny", device="cpu"), MASKED_CLASSES[:1])
    with pytest.raises(DscError) as exc:
        create("augmenter", "dafusion", {"tokens": tokens}).check(MASKED_CLASSES)
    assert all(c in exc.value.message for c in MASKED_CLASSES[1:])
