"""`--mode` / `--ood-strategy` resolve to one role object (dsc/augment/ood.py) that declares everything the job
asks of it: OOD or not, a second class, default strength, mask, seed role, and its conditioning."""

from __future__ import annotations

import typing

import numpy as np
import pytest

from dsc.augment.ood import NORMAL, OOD_STRATEGIES, Role, resolve
from dsc.settings import AugmentSettings

#: What each role declares: (is_ood, needs a second class, default strength, mask, stronger edit, seed role).
EXPECTED = {
    ("normal", None): (False, False, 0.5, None, False, "normal"),
    ("ood", "strength"): (True, False, 0.75, None, True, "ood:strength"),
    ("ood", "other-class"): (True, True, 0.75, None, False, "ood:other-class"),
    ("ood", "inpaint-object"): (True, False, 1.0, "object", False, "ood:inpaint-object"),
    ("ood", "blend"): (True, True, 0.75, None, False, "ood:blend"),
}


def _literal(field: str) -> tuple[str, ...]:
    return typing.get_args(AugmentSettings.model_fields[field].annotation)


def test_resolve_covers_every_mode_and_ood_strategy_the_settings_allow():
    assert set(_literal("mode")) == {"normal", "ood"}
    assert set(OOD_STRATEGIES) == set(_literal("ood_strategy"))
    for strategy in _literal("ood_strategy"):
        role = resolve("ood", strategy)
        assert isinstance(role, Role) and role.name == strategy and role.is_ood
        assert resolve("normal", strategy) is NORMAL  # the OOD strategy is ignored in normal mode
    assert resolve("normal", "") is NORMAL
    with pytest.raises(ValueError, match="no augment role"):
        resolve("ood", "nonsense")


@pytest.mark.parametrize(("mode", "strategy"), list(EXPECTED))
def test_every_role_answers_its_declarations(mode, strategy):
    role = resolve(mode, strategy or "strength")
    is_ood, other, strength, mask, stronger, seed_role = EXPECTED[mode, strategy]
    assert (role.is_ood, role.needs_other_class, role.default_strength, role.mask, role.needs_stronger_edit,
            role.seed_role) == (is_ood, other, strength, mask, stronger, seed_role)
    assert role.needs_mask is (mask is not None)
    assert role.label(2) == (-1 if is_ood else 2)
    assert role.recorded_strategy == (strategy if is_ood else "")
    assert role.threshold_setting == ("max_source_confidence" if is_ood else "min_confidence")
    scores = np.array([0.2, 0.5, 0.8])
    kept = role.keep(scores, 0.5).tolist()
    assert kept == ([True, True, False] if is_ood else [False, True, True])
    assert role.filter_rule(0.5) == ("keep score <= 0.5" if is_ood else "keep score >= 0.5")


class _Prompts:
    """A stand-in for Conditioning: embeddings are vectors naming the prompt's length."""

    blend_weight = 0.25
    ood_prompt = "a photo of an object"

    def __init__(self) -> None:
        self.cache: dict[str, object] = {}

    def embed(self, prompt: str) -> np.ndarray:
        return np.full(2, float(len(prompt)))

    def class_prompt(self, label: int) -> str:
        return f"a photo of a {['gear', 'bolt'][label]}"

    def cached(self, key: str, make):
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]


@pytest.mark.parametrize(("mode", "strategy", "cond", "uncond", "text"), [
    ("normal", "strength", "a photo of a gear", "", "a photo of a gear"),
    ("ood", "strength", "a photo of a gear", "", "a photo of a gear"),
    ("ood", "other-class", "a photo of a bolt", "", "a photo of a bolt"),
    ("ood", "inpaint-object", "a photo of an object", "a photo of a gear",
     "a photo of an object [negative: a photo of a gear]"),
])
def test_each_role_conditions_on_its_prompts(mode, strategy, cond, uncond, text):
    p = _Prompts()
    c, u, recorded = resolve(mode, strategy).condition(p, 0, 1)
    np.testing.assert_array_equal(c, p.embed(cond))
    np.testing.assert_array_equal(u, p.embed(uncond))
    assert recorded == text


def test_blend_mixes_the_two_class_embeddings_once():
    p = _Prompts()
    c, u, recorded = resolve("ood", "blend").condition(p, 0, 1)
    own, other = p.embed("a photo of a gear"), p.embed("a photo of a bolt")
    np.testing.assert_allclose(c, 0.75 * own + 0.25 * other)
    np.testing.assert_array_equal(u, p.embed(""))
    assert recorded == "blend(0.25): a photo of a gear | a photo of a bolt"
    assert resolve("ood", "blend").condition(p, 0, 1)[0] is c  # cached for the job
