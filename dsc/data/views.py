"""Random views of batched uint8 images, with per-sample random parameters and no per-sample Python loop.

torchvision.transforms.v2 draws one set of random parameters per call, so applying it to a batch gives
every image the same crop; calling it per image is a Python loop over the batch. Here the SupContrast recipe
is applied to a whole batch at once, with parameters drawn per sample from an explicit generator:

- RandomResizedCrop(scale=(0.2, 1), ratio=(3/4, 4/3)) and horizontal flip (p 0.5): one affine
  ``grid_sample`` over the batch (bilinear);
- ColorJitter(0.4, 0.4, 0.4, 0.1) with p 0.8: brightness, contrast, saturation as in torchvision, hue as a
  rotation of the chroma plane (YIQ), in a random order per batch;
- RandomGrayscale(p 0.2);
- then normalisation with the backbone's mean/std (torchvision.transforms.v2.functional.normalize).

``light`` is crop scale (0.6, 1) + flip; ``none`` only normalises. Parameters are drawn on the CPU from the
given ``torch.Generator`` so results are identical on every device and do not depend on the batch layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

AUGMENTATIONS = ("supcon", "light", "none")
_GRAY = (0.299, 0.587, 0.114)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [0, 1]."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def crop_params(n: int, size: int, scale: tuple[float, float], generator: torch.Generator,
                ratio: tuple[float, float] = (3 / 4, 4 / 3), attempts: int = 10) -> torch.Tensor:
    """RandomResizedCrop boxes as fractions of a square image: [n, 4] = (x0, y0, w, h), vectorised.

    Same sampling as torchvision (area uniform in ``scale``, log-uniform aspect ratio, first of 10 attempts
    that fits, else the whole image), on integer pixel boxes of a ``size`` x ``size`` image.
    """
    area = float(size * size)
    target = area * (scale[0] + (scale[1] - scale[0]) * torch.rand(n, attempts, generator=generator))
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * torch.rand(
        n, attempts, generator=generator)
    aspect = torch.exp(log_r)
    w = torch.sqrt(target * aspect).round()
    h = torch.sqrt(target / aspect).round()
    ok = (w > 0) & (w <= size) & (h > 0) & (h <= size)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
    u = torch.rand(n, 2, generator=generator)
    rows = torch.arange(n)
    pick = first.clamp(min=0)
    w_sel = torch.where(first >= 0, w[rows, pick], torch.full((n,), float(size)))
    h_sel = torch.where(first >= 0, h[rows, pick], torch.full((n,), float(size)))
    x0 = torch.floor(u[:, 0] * (size - w_sel + 1))
    y0 = torch.floor(u[:, 1] * (size - h_sel + 1))
    return torch.stack([x0, y0, w_sel, h_sel], 1) / size


def crop_flip(x: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor, out_size: int) -> torch.Tensor:
    """Crop boxes (fractions) from float images [B, 3, H, W], resize to ``out_size``, flip where asked."""
    b = x.shape[0]
    x0, y0, w, h = boxes.unbind(1)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = w * torch.where(flip, -1.0, 1.0)
    theta[:, 0, 2] = 2 * x0 + w - 1
    theta[:, 1, 1] = h
    theta[:, 1, 2] = 2 * y0 + h - 1
    grid = F.affine_grid(theta.to(x.device, x.dtype), [b, 3, out_size, out_size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor * a + (1 - factor) * b).clamp_(0, 1)


def _hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``shift`` (fraction of a turn, per sample) in YIQ space."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          device=x.device, dtype=x.dtype)
    from_yiq = torch.linalg.inv(to_yiq)
    angle = shift * 2 * math.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(x.shape[0], 3, 3, device=x.device, dtype=x.dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    m = from_yiq @ rot @ to_yiq  # [B, 3, 3]
    return torch.einsum("bij,bjhw->bihw", m, x).clamp_(0, 1)


def color_jitter(x: torch.Tensor, generator: torch.Generator, strength: Sequence[float] = (0.4, 0.4, 0.4, 0.1),
                 p: float = 0.8) -> torch.Tensor:
    """Per-sample ColorJitter applied with probability ``p``; float images in [0, 1]."""
    b = x.shape[0]
    bri, con, sat, hue = strength
    apply = torch.rand(b, generator=generator) < p
    u = torch.rand(b, 4, generator=generator)
    order = torch.randperm(4, generator=generator).tolist()
    dev = x.device

    def fac(col: int, s: float) -> torch.Tensor:
        f = torch.where(apply, 1 - s + 2 * s * u[:, col], torch.ones(b))
        return f.to(dev, x.dtype).view(b, 1, 1, 1)

    for op in order:
        if op == 0 and bri > 0:
            x = (x * fac(0, bri)).clamp_(0, 1)
        elif op == 1 and con > 0:
            mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
            x = _blend(x, mean, fac(1, con))
        elif op == 2 and sat > 0:
            x = _blend(x, _gray(x), fac(2, sat))
        elif op == 3 and hue > 0:
            shift = torch.where(apply, (2 * u[:, 3] - 1) * hue, torch.zeros(b))
            x = _hue(x, shift.to(dev, x.dtype))
    return x


def random_grayscale(x: torch.Tensor, generator: torch.Generator, p: float = 0.2) -> torch.Tensor:
    mask = (torch.rand(x.shape[0], generator=generator) < p).to(x.device).view(-1, 1, 1, 1)
    return torch.where(mask, _gray(x).expand_as(x), x)


class ViewMaker:
    """Turns uint8 [B, H, W, 3] batches (on any device) into normalised float views [B, 3, S, S]."""

    def __init__(self, augmentation: str, size: int, mean: Sequence[float], std: Sequence[float],
                 channels_last: bool = False) -> None:
        if augmentation not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {augmentation!r}")
        self.augmentation, self.size, self.channels_last = augmentation, size, channels_last
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as TF

        x = TF.normalize(x, self.mean, self.std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def plain(self, images: torch.Tensor) -> torch.Tensor:
        """No augmentation (evaluation): resize if needed and normalise."""
        x = to_float(images)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        return self.normalize(x)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.augmentation == "none":
            return self.plain(images)
        x = to_float(images)
        n = x.shape[0]
        scale = (0.2, 1.0) if self.augmentation == "supcon" else (0.6, 1.0)
        boxes = crop_params(n, x.shape[-1], scale, generator)
        flip = torch.rand(n, generator=generator) < 0.5
        x = crop_flip(x, boxes, flip, self.size)
        if self.augmentation == "supcon":
            x = color_jitter(x, generator)
            x = random_grayscale(x, generator)
        return self.normalize(x)
