"""The plugin contracts: what a dataset, backbone or augmenter plugin must provide.

A plugin is a class registered under an entry point (``dsc.datasets``, ``dsc.backbones``,
``dsc.augmenters``). It declares ``name``, a one-line ``summary`` and an ``Options`` pydantic model
that validates its options, and is built the same way whatever its kind: ``Plugin(options)``
(``dsc.registry.create(kind, name, options)`` validates the options first). The registry checks name,
summary and ``Options`` of every plugin it loads, third-party ones included. Plugin modules must not
import torch, diffusers or h5py at module level (``dsc plugins`` imports them to read their summaries);
import heavy libraries inside methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch


class PluginOptions(BaseModel):
    """Base for plugin option models: unknown keys are an error, values are validated."""

    model_config = ConfigDict(extra="forbid")


#: The longest ``summary`` the registry accepts (one line of `dsc plugins`).
SUMMARY_MAX = 90


class Plugin(ABC):
    """What every plugin has: ``name``, a one-line ``summary``, validated ``Options``, ``Plugin(options)``."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    Options: ClassVar[type[PluginOptions]] = PluginOptions

    def __init__(self, options: PluginOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()


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


class DatasetPlugin(Plugin):
    """Yields records; never writes HDF5. `dsc subset` does choosing, cropping, resizing and writing."""

    Options: ClassVar[type[DatasetOptions]] = DatasetOptions
    options: DatasetOptions
    #: How a user gives this dataset group information, quoted when `dsc subset` finds images without one.
    groups_hint: ClassVar[str] = ""

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
    # Set by dsc.backbones.create_backbone (plugins leave them): "imagenet" or "small" (dsc/stems.py), and why.
    stem: str = "imagenet"
    stem_reason: str = ""
    #: The file the weights were read from (pretrained cache or --checkpoint); None: random initialisation.
    #: Training records its SHA-256 in run.json (``backbone.weights``).
    weights_file: Path | None = None


class BackboneOptions(PluginOptions):
    """Options of a backbone plugin (none in common). A plugin whose library builder takes free keyword
    arguments (timm's ``drop_path_rate``) may allow extra keys and pass ``model_extra`` on."""


class BackbonePlugin(Plugin):
    """Builds pooled-feature encoders. Training code never asks which library a backbone came from.

    ``feature_dim`` of the built :class:`Backbone` is trusted as declared (never re-measured at run time);
    ``dsc.backbones.check_feature_dim`` measures it once, in the contract tests, on ``example_model``.
    """

    Options: ClassVar[type[BackboneOptions]] = BackboneOptions
    options: BackboneOptions
    #: A small model this plugin builds offline from random weights (the contract tests build it).
    example_model: ClassVar[str] = ""

    @abstractmethod
    def list_models(self, pattern: str = "*") -> list[str]:
        """Model names this plugin can build."""

    @abstractmethod
    def create(self, model: str, *, pretrained: bool = False, checkpoint: Path | None = None) -> Backbone:
        """Build ``model``. Missing weights offline raise ``ModelError`` saying how to get them."""


# ------------------------------------------------------------------------------------------- augmenters
class SDComponents(Protocol):
    """What an augmenter may use of the loaded Stable Diffusion model (``dsc.diffusion.models.SDComponents``):
    the diffusers/transformers modules, frozen, on ``device``."""

    vae: Any
    unet: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    device: torch.device
    dtype: torch.dtype


class AugmenterPlugin(Plugin):
    """A synthetic-data strategy: says what each synthetic image is conditioned on.

    Batching, seeds, resume, provenance and writing belong to `dsc augment`, not to the strategy. A strategy
    decides the words that stand for a class in prompts (a learned token, the class name, ...) and may
    install what it needs into the loaded model once per job. `dsc augment` then encodes every distinct
    prompt once (``encode``) and runs the batched generation. Documented in ``docs/augmenters.md``.

    Call order: ``check(class_names)`` before the model loads (fail fast), ``prepare(components, class_names)``
    once, then ``prompt(template, class_name)`` and ``encode(components, prompts)`` for every distinct prompt.
    ``components`` is an :class:`SDComponents`. What a strategy needs beyond that (DA-Fusion's learned tokens)
    is one of its ``Options``.
    """

    def check(self, class_names: list[str]) -> None:
        """Refuse, before the (slow) model load, options that cannot serve ``class_names`` (default: none)."""

    def prepare(self, components: SDComponents, class_names: list[str]) -> dict[str, Any]:
        """Install what the strategy needs into the loaded model (e.g. learned tokens), once per job.

        Return provenance to record in the output (JSON-able), e.g. the token manifest's path and hash.
        Raise ``InputError``/``MismatchError`` naming every class that cannot be served (never skip one).
        """
        return {}

    def class_phrase(self, class_name: str) -> str:
        """The words that stand for a class in prompts (default: the class name, underscores as spaces)."""
        return class_name.replace("_", " ")

    def prompt(self, template: str, class_name: str) -> str:
        """A class's prompt: ``template`` with ``{token}`` (the class phrase) and ``{name}`` filled in."""
        return template.format(token=self.class_phrase(class_name), name=class_name.replace("_", " "))

    def encode(self, components: SDComponents, prompts: list[str]) -> torch.Tensor:
        """Prompt embeddings ``[n, L, D]`` for ``prompts`` (called once per distinct prompt and job)."""
        from dsc.diffusion.generate import encode_prompts

        return encode_prompts(components.tokenizer, components.text_encoder, prompts)
