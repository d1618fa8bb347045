"""Strategy families: how a strategy's images are planned, beyond the prompt words the plugin chooses.

An augmenter plugin names its family with the class attribute ``family`` (absent: ``img2img``):

- ``img2img``: variants of each source image toward its own class (``dafusion``, ``real-guidance``);
- ``mix``: Diff-Mix (``diff-mix``): a source of class i edited toward a partner class j's prompt at strength s,
  soft target ``(1 - s**gamma) * y_i + s**gamma * y_j``; j drawn per image, uniformly or by confusion;
- ``text``: text-to-image (``text-to-image``): no source image, ``M`` images per class from the prompt alone.

:func:`apply_family` fills each family's defaults into the settings and refuses options that do not belong
to it, one line each (``dsc.augment.presets.effective_settings`` calls it).
"""

from __future__ import annotations

from typing import Any

from dsc.errors import ConfigError

FAMILIES = ("img2img", "mix", "text")
#: Diff-Mix's classification scripts: soft-label exponent 0.8; its mix strengths {0.5, 0.7, 0.9}.
DEFAULT_GAMMA = 0.8
MIX_STRENGTHS = [0.5, 0.7, 0.9]
#: The strategy options only one family reads, and their defaults there.
OWN_OPTIONS = {"gamma": ("mix", DEFAULT_GAMMA), "pairs": ("mix", "uniform"), "per_class": ("text", None)}


def family_of(strategy: str) -> str:
    """The family of an installed augmenter plugin (its ``family`` attribute, default ``img2img``)."""
    from dsc import registry

    family = getattr(registry.get_plugin("augmenter", strategy), "family", "img2img")
    if family not in FAMILIES:
        raise ConfigError(f"augmenter {strategy} declares an unknown family {family!r}",
                          hint=f"a plugin's family is one of {', '.join(FAMILIES)}")
    return family


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _given(sources: dict[str, str], key: str) -> bool:
    """Set on the command line or in code (a config file or the environment may hold options of any strategy)."""
    return not sources.get(f"augment.{key}", "").startswith(("config file", "environment"))


def apply_family(values: dict[str, Any], sources: dict[str, str], preset: set[str] | frozenset[str] = frozenset()
                 ) -> str:
    """Fill the family's defaults into ``values`` (AugmentSettings as a dict) and refuse what it cannot use.

    Returns the family. Options of another family are refused when given on the command line (or in code) and
    dropped when they come from a config file or the environment. ``preset``: the keys ``--preset`` filled
    (a text-to-image job ignores a preset's strengths).
    """
    strategy = values["strategy"]
    family = family_of(strategy)
    for key, (owner, default) in OWN_OPTIONS.items():
        if owner == family:
            values[key] = default if values[key] is None else values[key]
        elif values[key] is not None:
            if _given(sources, key):
                user = "diff-mix" if owner == "mix" else "text-to-image"
                raise ConfigError(f"{_flag(key)} is an option of --strategy {user}, not of {strategy}",
                                  hint=f"drop {_flag(key)}, or use --strategy {user}")
            values[key] = None
    if family == "img2img":
        return family
    if values["mode"] != "normal":
        raise ConfigError(f"--strategy {strategy} makes in-distribution positives; it has no --mode ood",
                          hint="drop --mode ood; OOD negatives come from --strategy dafusion or real-guidance")
    if family == "mix":
        _check_mix(values)
    else:
        _check_text(values, strategy, "strength" in preset)
    return family


def _check_mix(values: dict[str, Any]) -> None:
    if values["pairs"] == "confusion" and values["filter"] is None:
        raise ConfigError("--pairs confusion draws partner classes from the validation confusion of a real-data "
                          "classifier, but no --filter RUN names one",
                          hint="add --filter RUN (a `dsc baseline` run on this DATA.h5), or use --pairs uniform")
    if values["strength"] is None:
        values["strength"] = list(MIX_STRENGTHS)


def _check_text(values: dict[str, Any], strategy: str, preset_strength: bool) -> None:
    if values["strength"] not in (None, [1.0]) and not preset_strength:
        raise ConfigError(f"--strategy {strategy} starts every image from noise (strength 1.0); it has no "
                          "--strength", hint="drop --strength")
    if values["mask"] != "none":
        raise ConfigError(f"--strategy {strategy} has no source image to mask", hint="drop --mask")
    values["strength"], values["strength_probs"] = [1.0], None
