"""Choosing the device and the floating-point type for diffusion models."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dsc.errors import InputError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA, else Apple MPS, else CPU. An explicit device that is not available is an error."""
    import torch

    if isinstance(device, torch.device):
        return device
    name = (device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():  # one GPU per process under accelerate launch / torchrun
            from dsc.parallel import distributed, local_rank

            return torch.device("cuda", local_rank()) if distributed() else torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device {device!r}", hint="use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available",
                         hint="use --device auto or cpu")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"device {device!r} requested but MPS is not available", hint="use --device auto or cpu")
    return dev


def pick_dtype(dtype: str | torch.dtype = "auto", device: torch.device | None = None) -> torch.dtype:
    """``auto``: float16 on CUDA, float32 elsewhere (CPU half precision is slow and partly unsupported)."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    name = (dtype or "auto").lower()
    if name == "auto":
        return torch.float16 if device is not None and device.type == "cuda" else torch.float32
    if name not in _DTYPES:
        raise InputError(f"unknown dtype {dtype!r}", hint="use auto, float32, float16 or bfloat16")
    out = getattr(torch, _DTYPES[name])
    if device is not None and device.type == "cpu" and out == torch.float16:
        log.warning("float16 on CPU is slow and some operations are unsupported; prefer float32 or bfloat16")
    return out
