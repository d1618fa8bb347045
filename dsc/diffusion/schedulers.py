"""Noise schedulers by short name (``--scheduler``), built from the model's own scheduler config."""

from __future__ import annotations

from typing import Any

from dsc.errors import ConfigError

#: Short name -> diffusers class name. ``default`` keeps the model's own scheduler (PNDM for SD 1.x).
SCHEDULERS: dict[str, str] = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "pndm": "PNDMScheduler",
    "lms": "LMSDiscreteScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler-a": "EulerAncestralDiscreteScheduler",
    "dpm": "DPMSolverMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "heun": "HeunDiscreteScheduler",
}


def scheduler_names() -> list[str]:
    return ["default", *SCHEDULERS]


def make_scheduler(name: str, base: Any) -> Any:
    """A fresh scheduler called ``name`` configured like ``base`` (the model's scheduler)."""
    import diffusers

    if name in ("default", ""):
        return base.__class__.from_config(base.config)
    if name not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {name!r}", hint=f"use one of {', '.join(scheduler_names())}")
    return getattr(diffusers, SCHEDULERS[name]).from_config(base.config)


def scheduler_label(name: str, scheduler: Any) -> str:
    """What provenance records: the short name and the diffusers class."""
    return f"{name or 'default'}:{type(scheduler).__name__}"
