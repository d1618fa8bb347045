"""The ``timm`` backbone plugin: any timm model by name, pooled features via ``num_classes=0``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from dsc.backbones import load_weights, unknown_model_error
from dsc.contracts import Backbone, BackboneOptions, BackbonePlugin
from dsc.errors import ModelError

log = logging.getLogger(__name__)

# Files timm looks for in a model's Hugging Face repository, preferred first.
_HF_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors",
             "open_clip_pytorch_model.bin")


class TimmOptions(BackboneOptions):
    """Any keyword ``timm.create_model`` takes (``drop_path_rate=0.1``); timm refuses the ones a model does not."""

    model_config = ConfigDict(extra="allow")


class TimmBackbone(BackbonePlugin):
    """Any timm model (`timm:resnet50`, `timm:convnext_tiny.fb_in1k`); pretrained weights from the local cache."""

    name = "timm"
    summary = "Any timm model by name; --pretrained reads timm weights from the local Hugging Face cache"
    Options = TimmOptions
    example_model = "test_resnet"

    def list_models(self, pattern: str = "*") -> list[str]:
        import timm

        names = set(timm.list_models(pattern))
        if "." in pattern:  # tagged names ("convnext_tiny.fb_*") exist only among pretrained ones
            names.update(timm.list_models(pattern, pretrained=True))
        return sorted(names)

    def check(self, model: str, *, pretrained: bool = False) -> None:
        """Fail fast (nothing built, nothing downloaded): an unknown name, a hub model that is not in the
        local cache, or pretrained weights that are not."""
        self._check_name(model)
        if _hub_id(model):
            hub_snapshot(model, weights=pretrained)
        elif pretrained:
            cached_weights(model)

    def create(self, model: str, *, pretrained: bool = False, checkpoint: Path | None = None) -> Backbone:
        import timm
        import timm.data

        kwargs: dict[str, Any] = dict(self.options.model_extra or {})
        self._check_name(model)
        overlay = None
        source = "random"
        name = model
        if _hub_id(model):  # timm would download config (and weights): read the local snapshot instead
            folder = hub_snapshot(model, weights=pretrained and checkpoint is None)
            name = f"local-dir:{folder}"
            if pretrained and checkpoint is None:
                source = f"pretrained:{folder}"
        elif pretrained and checkpoint is None:
            path = cached_weights(model)
            overlay = {"file": str(path)}
            source = f"pretrained:{path}"
        hub_weights = name != model and source != "random"
        try:
            net = timm.create_model(name, pretrained=overlay is not None or hub_weights, num_classes=0,
                                    pretrained_cfg_overlay=overlay, **kwargs)
        except TypeError as exc:  # an option this architecture does not take
            raise ModelError(f"timm cannot build {model!r} with options {sorted(kwargs)}: {exc}",
                             hint="drop the options this model does not accept") from exc
        except Exception as exc:  # a damaged or foreign weights file (safetensors, torch or timm errors)
            if overlay is None and name == model:
                raise
            where = overlay["file"] if overlay is not None else name.removeprefix("local-dir:")
            raise ModelError(f"cannot load the cached weights of {model!r} ({where}): "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0]}",
                             hint="delete the damaged file and fetch it again online, or pass --checkpoint PATH") from exc
        weights_file = Path(overlay["file"]) if overlay is not None else \
            next((folder / f for f in _HF_FILES if (folder / f).is_file()), None) if hub_weights else None
        if checkpoint is not None:
            load_weights(net, checkpoint)
            source, weights_file = f"checkpoint:{checkpoint}", Path(checkpoint)
        cfg = timm.data.resolve_model_data_config(net)
        data_config = {
            "input_size": tuple(int(x) for x in cfg["input_size"]),
            "mean": tuple(float(x) for x in cfg["mean"]),
            "std": tuple(float(x) for x in cfg["std"]),
            "interpolation": str(cfg.get("interpolation", "bilinear")),
            "crop_pct": float(cfg.get("crop_pct", 1.0)),
        }
        log.info("timm %s weights: %s", model, source)
        width = getattr(net, "head_hidden_size", None) or net.num_features  # pooled output width
        return Backbone(module=net, feature_dim=int(width), model_id=f"timm:{model}", data_config=data_config,
                        weights_file=weights_file)

    def _check_name(self, model: str) -> None:
        import timm

        if model.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
            return
        arch, _, tag = model.partition(".")
        if not timm.is_model(arch):
            raise unknown_model_error("timm", model, timm.list_models())
        if tag and model not in timm.list_models(arch, pretrained=True):
            raise unknown_model_error("timm", model, timm.list_models(f"{arch}*", pretrained=True))


def _hub_id(model: str) -> str | None:
    """``timm/resnet18.a1_in1k`` for ``hf-hub:timm/resnet18.a1_in1k`` (``hf_hub:`` too); None otherwise."""
    for prefix in ("hf-hub:", "hf_hub:"):
        if model.startswith(prefix):
            return model[len(prefix):]
    return None


def hub_snapshot(model: str, *, weights: bool = False) -> Path:
    """The local snapshot folder of an ``hf-hub:REPO[@REVISION]`` model: its ``config.json`` (and, with
    ``weights``, its weights file) must be in the Hugging Face cache. Never contacts the hub, whatever
    ``HF_HUB_OFFLINE`` says; ``ModelError`` naming the folder looked in and the command that fills it."""
    from huggingface_hub import constants, try_to_load_from_cache

    repo, _, revision = (_hub_id(model) or model).partition("@")
    folder = Path(constants.HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))
    fetch = f"hf download {repo}" + (f" --revision {revision}" if revision else "")
    hint = (f"download it once with `{fetch}` (or `huggingface-cli download {repo}`); dsc never downloads "
            "backbones")
    config = try_to_load_from_cache(repo, "config.json", revision=revision or None)
    if not isinstance(config, str) or not Path(config).is_file():
        raise ModelError(f"timm model {model!r} is not in the local Hugging Face cache ({folder})", hint=hint)
    snapshot = Path(config).parent
    if weights and not any((snapshot / f).is_file() for f in _HF_FILES):
        raise ModelError(f"the weights of timm model {model!r} are not in the local Hugging Face cache "
                         f"({snapshot} has no {' or '.join(_HF_FILES[:2])})", hint=hint)
    return snapshot


def cached_weights(model: str) -> Path:
    """The local file holding timm's pretrained weights for ``model``; ``ModelError`` if not cached.

    Looks in the Hugging Face hub cache (``HF_HUB_CACHE``/``HF_HOME``) for the model's ``hf_hub_id``,
    then in timm's legacy torch-hub cache for its ``url``. Never downloads.
    """
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(model)
    except RuntimeError as exc:
        raise ModelError(f"timm has no pretrained weights for {model!r}: {exc}",
                         hint="drop --pretrained or pass --checkpoint PATH") from exc
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise ModelError(f"timm has no pretrained weights for {model!r}",
                         hint="drop --pretrained or pass --checkpoint PATH")
    if cfg.file and Path(cfg.file).is_file():
        return Path(cfg.file)
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = cfg.hf_hub_id.partition("@")
        files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HF_FILES
        for filename in files:
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    if cfg.url:
        from urllib.parse import urlparse

        import torch.hub

        url, name = cfg.url if isinstance(cfg.url, (tuple, list)) else (cfg.url, None)
        legacy = Path(torch.hub.get_dir()) / "checkpoints" / (name or Path(urlparse(url).path).name)
        if legacy.is_file():
            return legacy
    where = cfg.hf_hub_id or (cfg.url[0] if isinstance(cfg.url, (tuple, list)) else cfg.url)
    raise ModelError(
        f"pretrained weights for timm model {model!r} ({where}) are not in the local cache",
        hint=f"run once online: python -c \"import timm; timm.create_model('{model}', pretrained=True)\", "
             "or pass --checkpoint PATH",
    )
