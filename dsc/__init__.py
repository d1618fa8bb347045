"""dsc: does synthetic data help? Stable Diffusion augmentation and contrastive learning for small datasets.

The public Python API. Heavy submodules (torch, diffusers, h5py) load lazily on first attribute access,
so ``import dsc`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "DscError": "dsc.errors",
    "Store": "dsc.store",
    "open_store": "dsc.store",
    "StoreWriter": "dsc.store",
    "Record": "dsc.contracts",
    "ClassInfo": "dsc.contracts",
    "DatasetPlugin": "dsc.contracts",
    "BackbonePlugin": "dsc.contracts",
    "AugmenterPlugin": "dsc.contracts",
    "get_plugin": "dsc.registry",
    "list_plugins": "dsc.registry",
    "DscSettings": "dsc.settings",
    "resolve_settings": "dsc.settings",
    "build_subset": "dsc.subset",
    "SupConLoss": "dsc.losses",
    "run_augment": "dsc.augment",
    "AugmentResult": "dsc.augment",
    "gather_for_contrast": "dsc.losses",
    "create_backbone": "dsc.backbones",
    "list_backbones": "dsc.backbones",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dsc' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
