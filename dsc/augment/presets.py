"""The settings a job really runs with: ``--preset`` fills the values still at their default, the role
(``--mode``, ``--ood-strategy``) gives the default strength and any mask it implies, and ``--filter`` its
threshold (docs/commands/augment.md)."""

from __future__ import annotations

from typing import Any

from dsc.augment.ood import NORMAL, Role, resolve
from dsc.errors import ConfigError
from dsc.settings import AugmentSettings

#: The paper settings. ``--preset`` fills only values still at their default.
#: An OOD preset never takes its normal strengths: DA-Fusion (normal strengths up to 1.0) has none for OOD.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "dafusion": {  # Trabucco et al.: strength drawn from {0.25, 0.5, 0.75, 1.0}, guidance 7.5, M = 10, 50 steps
        mode: {"guidance": 7.5, "per_image": 10, "steps": 50, "prompt_template": "a photo of a {token}",
               "mask_dilation": 16, **({"strength": [0.25, 0.5, 0.75, 1.0]} if mode == "normal" else {})}
        for mode in ("normal", "ood")},
    "thesis": {  # the study: strength 0.2 (normal) / 0.5 (OOD), guidance 15, M = 4, 16 real images per class
        "normal": {"strength": [0.2], "guidance": 15.0, "per_image": 4, "examples_per_class": 16},
        "ood": {"strength": [0.5], "guidance": 15.0, "per_image": 4, "examples_per_class": 16,
                "ood_strategy": "strength"},
    },
}
#: ``--filter RUN`` without ``--min-confidence`` (normal) or ``--max-source-confidence`` (OOD).
DEFAULT_MIN_CONFIDENCE = 0.5
DEFAULT_MAX_SOURCE_CONFIDENCE = 0.5


def effective_settings(settings: AugmentSettings, sources: dict[str, str] | None = None) -> AugmentSettings:
    """Apply ``preset`` to the values still at their default, then the strategy family's options and defaults
    (``dsc.augment.families``), then the role's default strength and mask."""
    from dsc.augment.families import apply_family

    sources = sources or {}
    values = settings.model_dump()
    filled: set[str] = set()
    if settings.preset:
        for key, value in PRESETS[settings.preset][settings.mode].items():
            if sources.get(f"augment.{key}", "default") == "default":
                values[key] = value
                filled.add(key)
    apply_family(values, sources, filled)
    role = resolve(values["mode"], values["ood_strategy"])
    if values["strength"] is None:
        values["strength"] = [role.default_strength]
        _check_ood_strength(values, role)
    if role.mask is not None:
        if sources.get("augment.mask", "default") != "default" and values["mask"] != role.mask:
            raise ConfigError(f"--ood-strategy {role.name} edits the {role.mask}; it cannot use --mask "
                              f"{values['mask']}", hint=f"drop --mask ({role.name} implies --mask {role.mask})")
        values["mask"] = role.mask
    _filter_thresholds(values, sources, role)
    out = AugmentSettings.model_validate(values)
    probs = out.strength_probs
    if probs is not None and len(probs) != len(out.strength):
        raise ConfigError(f"{len(probs)} strength probabilities for {len(out.strength)} strengths",
                          hint="give one probability per --strength value")
    from dsc.diffusion.generate import check_strength

    for s in out.strength:
        check_strength(out.steps, s)
    return out


def _check_ood_strength(values: dict[str, Any], role: Role) -> None:
    """A role that differs from a positive only by a stronger edit (``strength``) needs a default strength
    above every normal strength of the preset (or of the defaults); refuse one they reach (the user may set
    one)."""
    if not role.needs_stronger_edit:
        return
    preset = values.get("preset")
    normal = (PRESETS[preset]["normal"].get("strength") if preset else None) or [NORMAL.default_strength]
    if min(values["strength"]) <= max(normal):
        name = f"--preset {preset}" if preset else "the defaults"
        raise ConfigError(
            f"{name} with --mode ood --ood-strategy {role.name} has no OOD strength of its own: the normal "
            f"strengths ({', '.join(f'{x:g}' for x in normal)}) reach {max(normal):g}, so an OOD image would be "
            "made like a positive",
            hint="set --strength yourself, or use --ood-strategy blend, other-class or inpaint-object")


def _filter_thresholds(values: dict[str, Any], sources: dict[str, str], role: Role) -> None:
    """The filter threshold of the role: ``min_confidence`` (normal) or ``max_source_confidence`` (OOD), each
    only with ``--filter`` (default 0.5 with it). The other mode's threshold given on the command line (or in
    code) is refused; from a config file or the environment, which may hold both, it is dropped."""
    own = role.threshold_setting
    other = "min_confidence" if own == "max_source_confidence" else "max_source_confidence"
    if values[other] is not None:
        if sources.get(f"augment.{other}", "").startswith(("config file", "environment")):
            values[other] = None
        elif role.is_ood:
            raise ConfigError("--min-confidence filters normal images; OOD images are filtered with "
                              "--max-source-confidence X",
                              hint="use --max-source-confidence X: an OOD image the real-data classifier still "
                                   "gives its source class with probability above X is rejected")
        else:
            raise ConfigError("--max-source-confidence filters OOD images (--mode ood); normal images are "
                              "filtered with --min-confidence X", hint="use --min-confidence X, or --mode ood")
    flag = "--" + own.replace("_", "-")
    if values[own] is not None and values["filter"] is None:
        raise ConfigError(f"{flag} needs --filter RUN (the classifier that scores the images)",
                          hint=f"add --filter RUN (a `dsc baseline` run trained on real data), or drop {flag}")
    if values["filter"] is not None and values[own] is None:
        values[own] = DEFAULT_MAX_SOURCE_CONFIDENCE if role.is_ood else DEFAULT_MIN_CONFIDENCE
