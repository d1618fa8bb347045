"""The diff-mix and text-to-image plugins: registered with their family, light to import, learned tokens optional
(the DA-Fusion family's tokens with --tokens, the class names without)."""

from __future__ import annotations

import sys

import pytest

from dsc.augment.families import family_of
from dsc.registry import create, get_plugin
from dsc.testing import MASKED_CLASSES, write_tokens


@pytest.mark.parametrize(("name", "family"), [("diff-mix", "mix"), ("text-to-image", "text"),
                                              ("dafusion", "img2img"), ("real-guidance", "img2img")])
def test_registered_with_their_family(name, family):
    cls = get_plugin("augmenter", name)
    assert cls.name == name and cls.summary and family_of(name) == family
    if family != "img2img":
        assert "tokens" in cls.Options.model_fields
        mod = sys.modules[cls.__module__]
        assert "torch" not in mod.__dict__ and "diffusers" not in mod.__dict__


@pytest.mark.parametrize("name", ["diff-mix", "text-to-image"])
def test_class_names_without_tokens_and_learned_tokens_with_them(name, tmp_path):
    from dsc.diffusion.models import load_components

    named = create("augmenter", name)
    named.check(MASKED_CLASSES)
    assert named.prepare(None, MASKED_CLASSES) == {"class_words": "class names (no --tokens)"}
    assert named.prompt("a photo of a {token}", "brake_caliper") == "a photo of a brake caliper"
    c = load_components("tiny", device="cpu")  # a fresh model: tokens are installed into it
    tokens = write_tokens(tmp_path / "T", c, MASKED_CLASSES)
    learned = create("augmenter", name, {"tokens": tokens})
    learned.check(MASKED_CLASSES)
    prov = learned.prepare(c, MASKED_CLASSES)
    assert len(prov["tokens_manifest"]["sha256"]) == 64
    assert learned.prompt("a photo of a {token}", "brake_caliper") == "a photo of a <brake_caliper>"
    assert learned.encode(c, ["a photo of a <gear>"]).shape[0] == 1


def test_both_strategies_use_a_ti_lora_token_set_and_record_it(run_dsc, data_h5, tmp_path):
    """`dsc invert --method ti+lora` (Diff-Mix's recipe): its tokens are in the prompts and its LoRA's hash is
    recorded (the DA-Fusion family's prepare loads and verifies it)."""
    import json

    import numpy as np

    from dsc.store import Store
    from dsc.testing import FAST_AUGMENT

    res = run_dsc("invert", data_h5, "--model", "tiny", "--steps", 2, "--resolution", 32, "--batch-size", 2,
                  "--method", "ti+lora", "--output", tmp_path / "tok", "--json")
    assert res.code == 0, res
    sha = json.loads(res.out)["lora"]["sha256"]
    for strategy in ("diff-mix", "text-to-image"):
        out = tmp_path / f"{strategy}.h5"
        res = run_dsc("augment", data_h5, "--tokens", tmp_path / "tok", *FAST_AUGMENT, "--strategy", strategy,
                      "-o", out)
        assert res.code == 0, res
        aug = Store(out)
        manifest = aug.attrs["inputs"]["tokens_manifest"]
        assert manifest["method"] == "ti+lora" and manifest["lora"]["sha256"] == sha
        assert all("<" in p for p in aug.column("prompt"))
        assert aug.images(slice(None)).shape[0] == 12 and np.isfinite(aug.mix_weight).all()
