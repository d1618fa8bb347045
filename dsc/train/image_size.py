"""The training image size (docs/training.md#image-size).

``--image-size N`` trains at N px. Without it a run trains at the resolution of DATA.h5, and at the
backbone's native input size (224 px for most ImageNet models) when the store is larger: a 64 px store
trains at 64 px (upscaling it to 224 px cost 29x the time for no new detail), a 512 px store made for
Stable Diffusion trains at 224 px. An explicit size more than 2x the store's resolution gets a warning.
The resolved size is what run.json records as ``settings.image_size``; ``dsc probe`` follows it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: An explicit ``--image-size`` above this multiple of the store's resolution is warned about.
UPSCALE_WARNING = 2.0


def store_resolution(store: Any) -> int:
    """The side in px of a store's images (the larger one if they are not square)."""
    shape = store.image_shape
    if not shape or len(shape) < 2:
        from dsc.errors import InputError

        raise InputError(f"{store.path} has no images", hint="make DATA.h5 with `dsc subset`")
    return int(max(shape[0], shape[1]))


def native_size(backbone: str) -> int | None:
    """The input size the backbone was designed for (``data_config["input_size"]``), read from a model built
    on the meta device (no memory, no weights); None where the plugin cannot say."""
    import torch

    from dsc import registry
    from dsc.backbones import parse_spec
    from dsc.errors import DscError

    plugin, model = parse_spec(backbone)
    before = logging.root.manager.disable
    logging.disable(logging.INFO)  # the real build reports the backbone; this one stays quiet
    try:
        with torch.device("meta"):
            built = registry.create("backbone", plugin).create(model)
        size = (built.data_config or {}).get("input_size")
        return int(size[-1]) if size else None
    except DscError:
        raise
    except Exception as exc:  # a plugin that cannot build on the meta device: no cap
        log.debug("native input size of %s unknown: %s: %s", backbone, type(exc).__name__, exc)
        return None
    finally:
        logging.disable(before)


def resolve_image_size(requested: int | None, store_side: int, native: Callable[[], int | None], *,
                       store_name: str = "DATA.h5") -> tuple[int, str]:
    """(size, where it came from): ``requested`` when given (warned about above 2x the store), else the
    store's resolution, capped at the backbone's ``native()`` size."""
    if requested is not None:
        ratio = requested / store_side
        if ratio > UPSCALE_WARNING:
            log.warning("--image-size %d upscales the %d px images of %s %.1fx: about %.0fx the compute for no "
                        "new detail; leave --image-size out to train at the store's resolution", requested,
                        store_side, store_name, ratio, ratio * ratio)
        return requested, ""
    cap = native()
    if cap is not None and store_side > cap:
        return cap, f"default: the backbone's native input size {cap} px (the store is {store_side} px)"
    return store_side, f"default: the store's resolution {store_side} px"
