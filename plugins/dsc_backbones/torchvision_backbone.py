"""The ``torchvision`` backbone plugin: torchvision classification models with the head replaced by Identity."""

from __future__ import annotations

import fnmatch
import logging
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from dsc.backbones import load_weights, unknown_model_error
from dsc.contracts import Backbone, BackboneOptions, BackbonePlugin
from dsc.errors import ModelError

log = logging.getLogger(__name__)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class TorchvisionOptions(BackboneOptions):
    """Any keyword ``torchvision.models.get_model`` takes; torchvision refuses the ones a model does not."""

    model_config = ConfigDict(extra="allow")


class TorchvisionBackbone(BackbonePlugin):
    """torchvision.models classifiers (`torchvision:resnet18`); pretrained weights from the torch hub cache."""

    name = "torchvision"
    summary = "torchvision.models classifiers; --pretrained reads weights from the torch hub cache"
    Options = TorchvisionOptions
    example_model = "shufflenet_v2_x0_5"

    def list_models(self, pattern: str = "*") -> list[str]:
        import torchvision.models

        return sorted(fnmatch.filter(torchvision.models.list_models(module=torchvision.models), pattern))

    def check(self, model: str, *, pretrained: bool = False) -> None:
        """Fail fast (nothing built): an unknown name, or (``pretrained``) weights not in the torch hub cache."""
        known = self.list_models()
        if model not in known:
            raise unknown_model_error("torchvision", model, known)
        if pretrained:
            _cached_file(model, _default_weights(model))

    def create(self, model: str, *, pretrained: bool = False, checkpoint: Path | None = None) -> Backbone:
        import torch
        import torchvision.models

        kwargs: dict[str, Any] = dict(self.options.model_extra or {})
        known = self.list_models()
        if model not in known:
            raise unknown_model_error("torchvision", model, known)
        if model in ("inception_v3", "googlenet"):
            kwargs.setdefault("aux_logits", False)
            kwargs.setdefault("init_weights", True)
        try:
            net = torchvision.models.get_model(model, weights=None, **kwargs)
        except TypeError as exc:
            raise ModelError(f"torchvision cannot build {model!r} with options {sorted(kwargs)}: {exc}",
                             hint="drop the options this model does not accept") from exc
        weights = _default_weights(model)
        weights_file = None
        if pretrained and checkpoint is None:
            path = weights_file = _cached_file(model, weights)
            # torchvision weights files carry the classifier too; load before removing it
            try:
                net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            except Exception as exc:  # a damaged or foreign file in the cache
                raise ModelError(f"cannot load the cached weights of {model!r} ({path}): "
                                 f"{type(exc).__name__}: {str(exc).splitlines()[0]}",
                                 hint="delete the damaged file and fetch it again online, or pass --checkpoint PATH",
                                 ) from exc
            log.info("torchvision %s weights: %s", model, path)
        feature_dim = _strip_head(net)
        if checkpoint is not None:
            load_weights(net, checkpoint)
            weights_file = Path(checkpoint)
        return Backbone(module=net, feature_dim=feature_dim, model_id=f"torchvision:{model}",
                        data_config=_data_config(weights), weights_file=weights_file)


def _default_weights(model: str) -> Any:
    import torchvision.models

    try:
        return torchvision.models.get_model_weights(model).DEFAULT
    except (ValueError, AttributeError):
        return None


def _cached_file(model: str, weights: Any) -> Path:
    """The torch-hub cache file of the default weights; ``ModelError`` if absent (never downloads)."""
    import torch.hub

    if weights is None:
        raise ModelError(f"torchvision has no pretrained weights for {model!r}",
                         hint="drop --pretrained or pass --checkpoint PATH")
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not path.is_file():
        raise ModelError(
            f"pretrained weights for torchvision model {model!r} are not in the local cache ({path})",
            hint=f"run once online: python -c \"import torchvision; torchvision.models.get_model('{model}', "
                 f"weights='DEFAULT')\", or pass --checkpoint PATH",
        )
    return path


def _strip_head(net: Any) -> int:
    """Replace the last Linear layer (the classifier) with Identity; return its input size."""
    import torch

    linears = [(name, mod) for name, mod in net.named_modules() if isinstance(mod, torch.nn.Linear)]
    if linears:
        name, last = linears[-1]
        net.set_submodule(name, torch.nn.Identity())
        return int(last.in_features)
    head = getattr(net, "classifier", None)
    if isinstance(head, torch.nn.Sequential) and any(isinstance(m, torch.nn.Conv2d) for m in head):
        # squeezenet: a 1x1 conv to class scores, then pooling; keep only the pooling
        in_ch = next(m for m in head if isinstance(m, torch.nn.Conv2d)).in_channels
        net.classifier = torch.nn.AdaptiveAvgPool2d((1, 1))
        return int(in_ch)
    # anything else: measure the output of a dummy forward
    net.eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 224, 224))
    return int(out.flatten(1).shape[1])


def _data_config(weights: Any) -> dict[str, Any]:
    size, mean, std, interp, crop_pct = 224, _IMAGENET_MEAN, _IMAGENET_STD, "bilinear", 0.875
    if weights is not None:
        try:
            t = weights.transforms()
            size = int(t.crop_size[0])
            mean, std = tuple(float(x) for x in t.mean), tuple(float(x) for x in t.std)
            interp = str(t.interpolation.value)
            crop_pct = size / float(t.resize_size[0])
        except (AttributeError, TypeError, IndexError):
            pass
    return {"input_size": (3, size, size), "mean": mean, "std": std, "interpolation": interp,
            "crop_pct": crop_pct}
