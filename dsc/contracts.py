"""The plugin contracts: what a dataset, backbone or augmenter plugin must provide.

A plugin is a class registered under an entry point (``dsc.datasets``, ``dsc.backbones``,
``dsc.augmenters``). It declares ``name``, a one-line ``summary`` and an ``Options`` pydantic model
that validates its options. Plugin modules must not import torch, diffusers or h5py at module level
(``dsc plugins`` imports them to read their summaries); import heavy libraries inside methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch


class PluginOptions(BaseModel):
    """Base for plugin option models: unknown keys are an error, values are validated."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class ClassInfo:
    """One class of a dataset, with what `subset` can select on."""

    name: str
    super_classes: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    description: str = ""


@dataclass
class Record:
    """One image of a dataset. ``image``/``mask`` are a path or an array (HxWx3 / HxW uint8).

    ``split`` is "train", "val" or "test" when the dataset defines splits, else None (subset makes
    stratified, group-respecting splits). ``group`` ties samples of one physical object or source photo
    together so they never span splits; None means the sample is its own group.
    """

    image: Path | np.ndarray
    label: str
    source: str
    mask: Path | np.ndarray | None = None
    split: str | None = None
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class DatasetOptions(PluginOptions):
    """Options every dataset plugin accepts (``--root`` and ``--masks`` on the command line)."""

    root: Path | None = None
    masks: Path | None = None


class DatasetPlugin(ABC):
    """Yields records; never writes HDF5. `dsc subset` does choosing, cropping, resizing and writing."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    Options: ClassVar[type[DatasetOptions]] = DatasetOptions

    def __init__(self, options: DatasetOptions) -> None:
        self.options = options

    @abstractmethod
    def classes(self) -> list[ClassInfo]:
        """All classes, in a stable order. Raise ``InputError`` if the dataset cannot be read."""

    @abstractmethod
    def records(self, classes: Sequence[str]) -> Iterator[Record]:
        """Records of the given classes only (in a stable order)."""

    def has_masks(self) -> bool:
        """Whether records carry masks."""
        return False


# -------------------------------------------------------------------------------------------- backbones
@dataclass
class Backbone:
    """An encoder mapping float images [B, 3, H, W] (normalised with ``mean``/``std``) to [B, feature_dim]."""

    module: torch.nn.Module
    feature_dim: int
    model_id: str
    data_config: dict[str, Any]  # input_size (C, H, W), mean, std, interpolation


class BackbonePlugin(ABC):
    """Builds pooled-feature encoders. Training code never asks which library a backbone came from."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""

    @abstractmethod
    def list_models(self, pattern: str = "*") -> list[str]:
        """Model names this plugin can build."""

    @abstractmethod
    def create(self, model: str, *, pretrained: bool = False, checkpoint: Path | None = None,
               **kwargs: Any) -> Backbone:
        """Build ``model``. Missing weights offline raise ``ModelError`` saying how to get them."""


# ------------------------------------------------------------------------------------------- augmenters
class AugmenterPlugin(ABC):
    """A synthetic-data strategy: turns source images + class info + per-image seeds into images.

    Batching, resume, provenance and writing belong to `dsc augment`, not to the strategy.
    The concrete generation interface is documented in ``docs/plugins.md``.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    Options: ClassVar[type[PluginOptions]] = PluginOptions
    needs_tokens: ClassVar[bool] = False
