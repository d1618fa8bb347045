"""What `dsc invert` checks before any work for ``--method lora|ti+lora`` (docs/commands/invert.md): options
the chosen method does not use, prior-preservation options without ``--prior-preservation``, a batch that
the processes cannot share, and LoRA target names that no UNet layer has."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dsc.errors import ConfigError

if TYPE_CHECKING:
    from dsc.settings import InvertSettings

PRIOR = ("prior_images", "prior_weight", "prior_steps")  # need --prior-preservation
UNUSED = {"textual-inversion": ("lora_rank", "lora_alpha", "lora_targets", "lora_lr", "prior_preservation", *PRIOR),
          "lora": ("num_vectors", "initializer", "lr", "scale_lr"), "ti+lora": ()}


def check_method_options(settings: InvertSettings, given: set[str] | None = None) -> None:
    """Refuse options the method does not use when they were ``given`` (the command line passes its own;
    default: every setting that was set). Set in dsc.toml or a study's [invert] table they are only unused."""
    given = set(settings.model_fields_set) if given is None else given
    unused = sorted(k for k in UNUSED[settings.method] if k in given)
    if unused:
        flags = ", ".join("--" + k.replace("_", "-") for k in unused)
        other = "lora or ti+lora" if settings.method == "textual-inversion" else "textual-inversion or ti+lora"
        raise ConfigError(f"--method {settings.method} does not use {flags}",
                          hint=f"drop {flags}, or pass --method {other}")
    loose = sorted(k for k in PRIOR if k in given) if not settings.prior_preservation else []
    if loose:
        flags = ", ".join("--" + k.replace("_", "-") for k in loose)
        raise ConfigError(f"{flags} set without --prior-preservation", hint=f"add --prior-preservation, or drop {flags}")


def check_targets(unet: Any, targets: list[str]) -> None:
    """Every name in ``targets`` must end the name of a linear or convolution layer of the UNet (the way
    peft matches ``target_modules``); else one line listing what the attention blocks have."""
    import torch

    layers = [n for n, m in unet.named_modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]
    unknown = [t for t in targets if not any(n == t or n.endswith("." + t) for n in layers)]
    if unknown:
        known = sorted({n.split(".attn1.")[-1] for n in layers if ".attn1." in n})
        raise ConfigError(f"--lora-targets: the UNet has no linear layer named {', '.join(unknown)}",
                          hint=f"its attention layers are {','.join(known)} (also proj_in, proj_out, ff.net.2)")


# ---------------------------------------------------------------------------------------------- the LoRA


def check_processes(settings: InvertSettings) -> None:
    """A LoRA's global batch is split over the processes of a multi-process launch: one image each at least."""
    from dsc import parallel

    world = parallel.world_size()
    if settings.method != "textual-inversion" and settings.batch_size < world:
        raise ConfigError(f"--batch-size {settings.batch_size} is smaller than the {world} processes that share "
                          "each batch", hint=f"pass --batch-size {world} or more")
