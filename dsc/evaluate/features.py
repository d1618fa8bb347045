"""Batched feature extraction from a store through a frozen encoder (eval mode, no grad, AMP on GPU).

Images are read from HDF5 in batches as uint8 [B, H, W, 3], resized to the run's image size (antialiased
bilinear), optionally corrupted (at that size), scaled to [0, 1] and normalised with the backbone's
data-config mean and std.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as F

from dsc.console import progress

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto": CUDA when available, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def module_device(module: torch.nn.Module, fallback: str | torch.device | None = None) -> torch.device:
    """Where a module lives (its first parameter or buffer); ``fallback`` for modules without tensors.

    Evaluation runs where the caller put the model: modules are never moved behind its back.
    """
    for t in (*module.parameters(), *module.buffers()):
        return t.device
    return resolve_device(fallback)


def normalisation(data_config: dict[str, Any] | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) from a backbone data config (ImageNet statistics when absent)."""
    cfg = data_config or {}
    return tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))


def default_image_size(data_config: dict[str, Any] | None, fallback: int = 224) -> int:
    size = (data_config or {}).get("input_size")
    return int(size[-1]) if size else fallback


class Preprocess:
    """uint8 [B, H, W, 3] numpy -> normalised float [B, 3, S, S] on ``device`` (optionally corrupted)."""

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float],
                 device: torch.device) -> None:
        self.size = int(image_size)
        self.device = device
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def uint8(self, images: np.ndarray) -> torch.Tensor:
        """Resized uint8 [B, 3, S, S] on the device."""
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(self.device)
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.resize(x, [self.size, self.size], antialias=True)
        return x.contiguous()

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(torch.float32) / 255.0 - self.mean) / self.std


def _autocast(device: torch.device):
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def extract_features(
    encoder: torch.nn.Module,
    store: Any,
    indices: np.ndarray | Sequence[int],
    *,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 256,
    device: str | torch.device | None = None,
    transform: Callable[[torch.Tensor, np.ndarray], torch.Tensor] | None = None,
    description: str | None = None,
    advance: Callable[[int], None] | None = None,
    shard: bool = False,
) -> torch.Tensor:
    """Features [N, D] (float32, CPU) of ``store`` rows ``indices`` (in the given order).

    ``transform(uint8 [B, 3, S, S], row_indices) -> uint8`` runs after resizing (used for corruptions).
    Runs on the encoder's device (``device`` only matters for an encoder without parameters).
    The encoder is put in eval mode for the duration and restored afterwards. ``advance(n)`` reports
    progress to a caller's bar instead of this function's own. ``shard=True`` under several processes
    (``accelerate launch``/``torchrun``): each process computes the batches ``k % world == rank`` and every
    process gets all features (the same batches, so the same values as one process computes).
    """
    from dsc import parallel

    dev = module_device(encoder, device)
    idx = np.asarray(indices, dtype=np.int64)
    prep = Preprocess(image_size, mean, std, dev)
    starts = list(range(0, len(idx), batch_size))
    sharded = shard and parallel.distributed()
    mine = parallel.shard(starts) if sharded else starts
    with _evaluating(encoder), contextlib.ExitStack() as stack:
        if advance is None and len(idx) > batch_size:
            advance = _own_bar(stack, sum(len(idx[s:s + batch_size]) for s in mine), description)
        chunks = [_encode_batch(encoder, store, idx[start:start + batch_size], prep, transform, advance)
                  for start in mine]
    if sharded:  # batch k of process r is global batch r + k * world
        parts = parallel.gather_objects(chunks)
        chunks = [parts[k % len(parts)][k // len(parts)] for k in range(len(starts))]
    if not chunks:
        dim = _feature_dim(encoder, prep, dev)
        return torch.empty(0, dim)
    return torch.cat(chunks)


@contextlib.contextmanager
def _evaluating(module: torch.nn.Module) -> Iterator[None]:
    """``module`` in eval mode for the block; its training flag restored afterwards."""
    was = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was)


def _own_bar(stack: contextlib.ExitStack, total: int, description: str | None) -> Callable[[int], None]:
    """A transient progress bar over ``total`` images (shown by the main process only); its ``advance``."""
    from dsc import parallel

    bar = stack.enter_context(progress("img", transient=True))
    task = bar.add_task(description or "features", total=total, status="", visible=parallel.is_main())
    return functools.partial(bar.advance, task)


def _encode_batch(encoder: torch.nn.Module, store: Any, rows: np.ndarray, prep: Preprocess,
                  transform: Callable[[torch.Tensor, np.ndarray], torch.Tensor] | None,
                  advance: Callable[[int], None] | None) -> torch.Tensor:
    """Features [B, D] (float32, CPU) of one batch of store rows."""
    x = prep.uint8(store.images(rows))
    if transform is not None:
        x = transform(x, rows)
    with _autocast(prep.device):
        feats = encoder(prep.normalise(x))
    out = feats.float().flatten(1).cpu()
    if advance is not None:
        advance(len(rows))
    return out


@torch.no_grad()
def _feature_dim(encoder: torch.nn.Module, prep: Preprocess, dev: torch.device) -> int:
    with _evaluating(encoder):
        x = torch.zeros(1, 3, prep.size, prep.size, device=dev)
        return int(encoder(x).flatten(1).shape[1])


@torch.no_grad()
def apply_head(head: torch.nn.Module, features: torch.Tensor, batch_size: int = 4096,
               device: str | torch.device | None = None) -> torch.Tensor:
    """Logits [N, C] (float32, CPU) of a classifier head on features, in eval mode, on the head's device."""
    dev = module_device(head, device)
    was = head.training
    head.eval()
    try:
        outs = [head(features[s:s + batch_size].to(dev)).float().cpu()
                for s in range(0, len(features), batch_size)]
    finally:
        head.train(was)
    if not outs:
        n_cls = getattr(head, "out_features", 0)
        return torch.empty(0, n_cls)
    return torch.cat(outs)
