"""The small-image stem of ResNet-family backbones (``--stem``; docs/backbones.md#small-images).

An ImageNet ResNet divides its input by 4 in the stem (a stride-2 7x7 conv, then a stride-2 max-pool) and by
32 in all: a 32 px image leaves a 1x1 map in the last stage, 64 px leaves 2x2. The small-image stem of
SupContrast's CIFAR ResNets is a 3x3 stride-1 first conv and no max-pool: the network divides by 8, so 32 px
leaves 4x4 and 64 px 8x8. ``--stem auto`` takes it for ResNet-family models trained from random weights at
``image_size <= SMALL_STEM_MAX_SIZE``; pretrained or ``--checkpoint`` weights keep the stem they were trained with.

The swap applies to instances of timm's and torchvision's ``ResNet`` classes (ResNet, ResNeXt, Wide ResNet,
SE/ECA-ResNet, ResNeSt, Res2Net, ResNet-RS, ...): they share the ``conv1`` and ``maxpool`` attributes. A timm deep
stem (ResNet-C/D/T: three 3x3 convs, ``conv1`` is a Sequential) keeps its convs and weights; its first conv
runs at stride 1. No torch import at module level.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dsc.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

log = logging.getLogger(__name__)

#: Largest ``image_size`` at which ``--stem auto`` takes the small stem (docs/training.md#small-images).
SMALL_STEM_MAX_SIZE = 31  # docs/training.md 'Small images': measured, the ImageNet stem won at 32 and 64 px
STEMS = ("auto", "imagenet", "small")
# The library modules whose ResNet class the swap knows (looked up only when already imported).
_RESNET_MODULES = ("timm.models.resnet", "torchvision.models.resnet")


@dataclass(frozen=True)
class StemChoice:
    """The stem a backbone is built with ("imagenet" or "small") and why."""

    stem: str
    reason: str


def choose_early(requested: str, *, image_size: int | None, initial_weights: bool) -> StemChoice | None:
    """The choice where it does not depend on the architecture; None where the model must be built first."""
    if requested not in STEMS:
        raise ConfigError(f"unknown stem {requested!r}", hint="use auto, imagenet or small")
    if requested == "imagenet":
        return StemChoice("imagenet", "requested")
    if requested == "small":
        return None
    if image_size is None:
        raise ValueError("stem 'auto' needs the image size")
    if image_size > SMALL_STEM_MAX_SIZE:
        return StemChoice("imagenet", f"auto: image_size {image_size} > {SMALL_STEM_MAX_SIZE}")
    if initial_weights:
        return StemChoice("imagenet", "auto: pretrained or --checkpoint weights keep the stem they were trained "
                                      "with")
    return None


def choose(requested: str, module: nn.Module, model_id: str, *, image_size: int | None) -> StemChoice:
    """The choice for a built ``module`` where :func:`choose_early` gave none; ``ConfigError`` for a small stem
    on a model without a ResNet stem."""
    resnet = is_resnet(module)
    if requested == "small":
        if not resnet:
            raise ConfigError(f"--stem small needs a timm or torchvision ResNet; {model_id} is not one",
                              hint="use --stem auto or imagenet, or a ResNet backbone such as timm:resnet18")
        return StemChoice("small", "requested")
    if not resnet:
        return StemChoice("imagenet", f"auto: {model_id} is not a timm or torchvision ResNet")
    return StemChoice("small", f"auto: image_size {image_size} <= {SMALL_STEM_MAX_SIZE}, ResNet, random init")


def is_resnet(module: nn.Module) -> bool:
    """Whether ``module`` is a timm or torchvision ResNet whose stem :func:`apply_small_stem` can change."""
    for name in _RESNET_MODULES:
        lib = sys.modules.get(name)
        if lib is not None and isinstance(module, lib.ResNet):
            return _first_conv(module) is not None and hasattr(module, "maxpool")
    return False


def apply_small_stem(module: nn.Module, *, pretrained: bool = False) -> str:
    """Give a ResNet the small-image stem in place; return what changed (for the log).

    A 7x7 ``conv1`` becomes a new 3x3 stride-1 conv with the same channels, initialised like the libraries do
    (Kaiming normal, fan_out, from the global RNG: seed it for a reproducible model); a deep stem's first conv
    runs at stride 1 with its weights. ``maxpool`` becomes Identity (with its parameters, where it has any).
    """
    import torch
    from torch import nn

    first = _first_conv(module)
    if first is None:
        raise ConfigError(f"{type(module).__name__} has no stem conv to replace", hint="use --stem imagenet")
    if isinstance(module.conv1, nn.Sequential):
        first.stride = (1, 1)
        what = "deep stem: first 3x3 conv at stride 1 (its weights kept)"
    else:
        old = module.conv1
        new = nn.Conv2d(old.in_channels, old.out_channels, kernel_size=3, stride=1, padding=1, bias=False,
                        device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
        module.conv1 = new
        what = f"conv1 {tuple(old.kernel_size)[0]}x{tuple(old.kernel_size)[1]} stride 2 -> new 3x3 stride 1"
    pool_params = sum(p.numel() for p in module.maxpool.parameters())
    module.maxpool = nn.Identity()
    what += ", no max-pool"
    if pretrained and (what.startswith("conv1") or pool_params):
        log.warning("small stem: the pretrained weights of the replaced stem layers are discarded (%s); the other "
                    "layers keep theirs", what)
    return what


def _first_conv(module: nn.Module) -> nn.Module | None:
    from torch import nn

    conv = getattr(module, "conv1", None)
    if isinstance(conv, nn.Sequential) and len(conv) and isinstance(conv[0], nn.Conv2d):
        conv = conv[0]
    return conv if isinstance(conv, nn.Conv2d) else None
