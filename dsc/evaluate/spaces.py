"""Feature spaces for synthetic-data quality, all offline (no Inception download):

- a run's encoder (``--encoder RUN``), at the run's image size and normalisation;
- ``random-cnn``: a fixed random-init 4-stage CNN (weights drawn from a seeded generator, so every dsc
  install computes the same features); random convolutional features are a known proxy for perceptual
  feature spaces when no trained network is at hand;
- ``pixels``: images average-pooled to 8x8 RGB (192 numbers), i.e. colour layout statistics only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dsc.evaluate.features import default_image_size, extract_features, normalisation

RANDOM_CNN_SIZE = 64


def _device() -> str:
    """Feature extraction runs on CUDA when available (features come back to the CPU)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


class RandomCNN(nn.Module):
    """conv(3->32->64->128->256, stride 2) + ReLU, then global mean and std pooling: 512 features."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        widths = [3, 32, 64, 128, 256]
        self.convs = nn.ModuleList()
        for cin, cout in zip(widths[:-1], widths[1:], strict=True):
            conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2.0 / (cin * 9)) ** 0.5)
                conv.bias.zero_()
            self.convs.append(conv)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = torch.relu(conv(x))
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


class PixelStats(nn.Module):
    """Average-pool to 8x8 and flatten (192 features)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)


@dataclass
class FeatureSpace:
    """An encoder with the preprocessing it expects."""

    name: str
    module: nn.Module
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def extract(self, store: Any, indices: np.ndarray, description: str = "features") -> np.ndarray:
        feats = extract_features(self.module, store, np.asarray(indices, dtype=np.int64),
                                 image_size=self.image_size, mean=self.mean, std=self.std, batch_size=128,
                                 description=description)
        return feats.numpy().astype(np.float64)

    def extract_array(self, images: np.ndarray) -> np.ndarray:
        """Features of in-memory uint8 NHWC images."""
        return self.extract(_ArrayStore(images), np.arange(len(images)), "features")


class _ArrayStore:
    """The one method extract_features needs, over an in-memory array."""

    def __init__(self, images: np.ndarray) -> None:
        self._images = images

    def images(self, rows: np.ndarray) -> np.ndarray:
        return self._images[rows]


def run_image_size(run_info: dict[str, Any], data_config: dict[str, Any]) -> int:
    """The image size a run trained at (its settings), else its backbone's default."""
    settings = run_info.get("settings") or {}
    for section in (settings, *(v for v in settings.values() if isinstance(v, dict))):
        if isinstance(section, dict) and isinstance(section.get("image_size"), int):
            return int(section["image_size"])
    return default_image_size(data_config)


def encoder_space(run_dir: Path) -> tuple[FeatureSpace, dict[str, Any]]:
    """The feature space of a run's encoder (best checkpoint), and its run.json."""
    from dsc.train.checkpoint import has_checkpoint, load_encoder

    which = "best" if has_checkpoint(run_dir, "best") else "last"
    backbone, info = load_encoder(run_dir, which, device=_device())
    mean, std = normalisation(backbone.data_config)
    size = run_image_size(info, backbone.data_config)
    return FeatureSpace(f"encoder of {Path(run_dir).name} ({backbone.model_id})", backbone.module, size,
                        tuple(mean), tuple(std)), info


def fixed_space(kind: str = "random-cnn", seed: int = 0) -> FeatureSpace:
    """A feature space that needs no run: ``random-cnn`` (seeded) or ``pixels``."""
    if kind == "pixels":
        return FeatureSpace("pixel statistics (8x8 RGB)", PixelStats(), RANDOM_CNN_SIZE, (0.0,) * 3, (1.0,) * 3)
    # weights are drawn on the CPU (same numbers everywhere), then moved
    return FeatureSpace(f"random-init CNN (seed {seed}, {RANDOM_CNN_SIZE} px)", RandomCNN(seed).to(_device()),
                        RANDOM_CNN_SIZE, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
