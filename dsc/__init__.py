"""dsc: does synthetic data help? Stable Diffusion augmentation and contrastive learning for small datasets.

The whole public Python API (docs/api.md): one verb per stage, ``subset``, ``invert``, ``augment``,
``pretrain``, ``baseline``, ``probe``, ``report`` and ``study``, taking the command's inputs as arguments and
its options as keyword arguments; plus the result, store, plugin and settings types they use. ``import dsc``
is cheap: torch, diffusers and h5py load when a verb runs or a type is first used.

>>> import dsc
>>> store = dsc.subset("data.h5", dataset="toyparts", classes=2, resolution=32)   # doctest: +SKIP
>>> run = dsc.pretrain("data.h5", "runs/supcon", backbone="timm:test_resnet", epochs=1)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from dsc import api

__version__ = "0.1.0"

#: The stages, in pipeline order: ``dsc.<verb>(...)`` runs the command of that name (dsc/api.py).
VERBS = ("subset", "invert", "augment", "pretrain", "baseline", "probe", "report", "study")

#: The other public names, loaded on first use: name -> (module, attribute).
_LAZY: dict[str, tuple[str, str]] = {
    # what the verbs return
    "SubsetResult": ("dsc.subset", "SubsetResult"),
    "TokenManifest": ("dsc.diffusion.tokens", "TokenManifest"),
    "AugmentResult": ("dsc.augment", "AugmentResult"),
    "TrainResult": ("dsc.train.common", "Result"),
    "ProbeResult": ("dsc.probe", "ProbeResult"),
    "ReportResult": ("dsc.report.build", "ReportResult"),
    "StudyResult": ("dsc.study", "StudyResult"),
    # errors
    "DscError": ("dsc.errors", "DscError"),
    "InputError": ("dsc.errors", "InputError"),
    "ConfigError": ("dsc.errors", "ConfigError"),
    # stores
    "Store": ("dsc.store", "Store"),
    "open_store": ("dsc.store", "open_store"),
    "StoreWriter": ("dsc.store", "StoreWriter"),
    # plugins: the contract and the registry
    "Record": ("dsc.contracts", "Record"),
    "ClassInfo": ("dsc.contracts", "ClassInfo"),
    "DatasetPlugin": ("dsc.contracts", "DatasetPlugin"),
    "BackbonePlugin": ("dsc.contracts", "BackbonePlugin"),
    "AugmenterPlugin": ("dsc.contracts", "AugmenterPlugin"),
    "get_plugin": ("dsc.registry", "get_plugin"),
    "list_plugins": ("dsc.registry", "list_plugins"),
    "create_plugin": ("dsc.registry", "create"),
    "create_backbone": ("dsc.backbones", "create_backbone"),
    "list_backbones": ("dsc.backbones", "list_backbones"),
    # settings
    "DscSettings": ("dsc.settings", "DscSettings"),
    "resolve_settings": ("dsc.settings", "resolve_settings"),
    # the loss
    "SupConLoss": ("dsc.losses", "SupConLoss"),
    "gather_for_contrast": ("dsc.losses", "gather_for_contrast"),
}


class Verb:
    """A stage of the pipeline: ``dsc.subset(...)`` calls ``dsc.api.subset``.

    Five verbs share their name with the stage's module or package (``dsc.subset``, ``dsc.augment``,
    ``dsc.probe``, ``dsc.study``, ``dsc.report``). Python binds an imported submodule as an
    attribute of its package, which would replace the verb; the package keeps the verb instead (``_Package``),
    and the verb passes every other attribute to that module (read, set, delete, ``vars()``), so
    ``import dsc.subset; dsc.subset.build_subset`` and ``monkeypatch.setattr(dsc.subset, ...)`` still reach
    the module."""

    def __init__(self, function: Any) -> None:
        for key, value in (("__wrapped__", function), ("__doc__", function.__doc__),
                           ("__name__", function.__name__), ("__qualname__", function.__name__)):
            object.__setattr__(self, key, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<dsc verb {self.__name__}>"

    def __getattribute__(self, attribute: str) -> Any:
        if attribute == "__dict__":  # vars() and pytest's monkeypatch read the module's namespace
            module = object.__getattribute__(self, "_stage")()
            if module is not None:
                return vars(module)
        return object.__getattribute__(self, attribute)

    def _stage(self) -> types.ModuleType | None:
        """The module of the same name (``dsc.<verb>``), or None when there is none."""
        name = f"dsc.{object.__getattribute__(self, '__name__')}"
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            return None

    def _module(self, attribute: str) -> types.ModuleType:
        module = None if attribute.startswith("__") and attribute.endswith("__") else self._stage()
        if module is None:
            raise AttributeError(f"the verb dsc.{self.__name__} has no attribute {attribute!r}")
        return module

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._module(attribute), attribute)

    def __setattr__(self, attribute: str, value: Any) -> None:
        setattr(self._module(attribute), attribute, value)

    def __delattr__(self, attribute: str) -> None:
        delattr(self._module(attribute), attribute)


class _Package(types.ModuleType):
    """The ``dsc`` package: importing ``dsc.subset`` (the module) leaves the verb ``dsc.subset`` in place."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in VERBS and isinstance(value, types.ModuleType):
            return  # the module stays in sys.modules and is reached through the verb
        super().__setattr__(name, value)


subset, invert, augment, pretrain, baseline, probe, report, study = (Verb(getattr(api, v)) for v in VERBS)

__all__ = ["__version__", *VERBS, *_LAZY]

sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'dsc' has no attribute {name!r}")
    return getattr(importlib.import_module(target[0]), target[1])
