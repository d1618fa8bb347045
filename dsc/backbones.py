"""Backbone resolution: ``"resnet50"``, ``"timm:convnext_tiny.fb_in1k"``, ``"torchvision:resnet18"``.

A spec is ``[plugin:]model``; without a plugin prefix the ``timm`` plugin builds it. Training, probe and
baseline code call :func:`create_backbone` and never ask which library a backbone came from.

:func:`load_weights` is the one checkpoint loader every backbone plugin uses for ``--checkpoint PATH``
(``.safetensors``, or ``.pt``/``.pth``/``.bin`` read with ``torch.load(weights_only=True)``).
No torch import at module level: the CLI imports this module to parse options.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsc import registry
from dsc.errors import ModelError, PluginError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from dsc.contracts import Backbone

log = logging.getLogger(__name__)

DEFAULT_PLUGIN = "timm"
# timm's own model-source prefixes: "hf-hub:timm/..." is a timm model name, not a dsc plugin.
_TIMM_SOURCES = ("hf-hub", "hf_hub", "local-dir")
# Wrapper prefixes that training code commonly adds to encoder weights (DDP, dsc's own model classes).
_PREFIXES = ("module.", "encoder.", "backbone.", "model.", "_orig_mod.")


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``[plugin:]model`` into (plugin, model)."""
    spec = spec.strip()
    if not spec:
        raise PluginError("empty backbone name", hint="pass e.g. --backbone resnet50 or timm:resnet18")
    plugin, sep, model = spec.partition(":")
    if not sep or plugin in _TIMM_SOURCES:
        return DEFAULT_PLUGIN, spec
    if not model:
        raise PluginError(f"backbone spec {spec!r} names no model", hint="write PLUGIN:MODEL, e.g. timm:resnet18")
    return plugin, model


def check_backbone(spec: str, *, pretrained: bool = False) -> None:
    """Fail fast, before any data or model is loaded, on a backbone that cannot be built: an unknown plugin
    or model name, or (``pretrained``) weights missing from the local cache. Imports the plugin's library
    (timm) but builds nothing; plugins without a ``check(model, pretrained=...)`` method pass."""
    plugin_name, model = parse_spec(spec)
    plugin = registry.create("backbone", plugin_name)
    check = getattr(plugin, "check", None)
    if callable(check):
        check(model, pretrained=pretrained)


def create_backbone(spec: str, *, pretrained: bool = False, checkpoint: Path | str | None = None,
                    stem: str = "imagenet", image_size: int | None = None, **kwargs: Any) -> Backbone:
    """Build the encoder named by ``spec`` (pooled features [B, feature_dim]).

    ``pretrained`` loads the library's weights from the local cache only (never downloads);
    ``checkpoint`` loads a local weights file instead. ``stem`` is "imagenet" (the model as the library
    builds it), "small" (the small-image stem of :mod:`dsc.stems`, ResNets only) or "auto" (small for a
    ResNet from random weights at ``image_size`` <= 64); the result sits in ``backbone.stem`` and
    ``backbone.stem_reason``. Keyword arguments set to None are dropped so plugin defaults stay in
    effect; the rest are the plugin's options (e.g. ``drop_path_rate`` for timm), validated by its
    ``Options``. The plugin's ``feature_dim`` is trusted (:func:`check_feature_dim` measures it, in tests).
    """
    from dsc import stems

    plugin_name, model = parse_spec(spec)
    plugin = registry.create("backbone", plugin_name, {k: v for k, v in kwargs.items() if v is not None})
    ckpt = Path(checkpoint).expanduser() if checkpoint is not None else None
    if ckpt is not None and pretrained:
        log.info("--checkpoint given: its weights replace the pretrained ones")
    choice = stems.choose_early(stem, image_size=image_size, initial_weights=pretrained or ckpt is not None)
    if choice is not None:
        backbone = plugin.create(model, pretrained=pretrained, checkpoint=ckpt)
    else:  # the choice needs the built model; a --checkpoint is loaded after the stem swap so its conv1 fits
        backbone = plugin.create(model, pretrained=pretrained and ckpt is None, checkpoint=None)
        choice = stems.choose(stem, backbone.module, backbone.model_id, image_size=image_size)
        if choice.stem == "small":
            what = stems.apply_small_stem(backbone.module, pretrained=pretrained and ckpt is None)
            log.debug("%s small stem: %s", backbone.model_id, what)
        if ckpt is not None:
            load_weights(backbone.module, ckpt)
            backbone.weights_file = ckpt
    backbone.stem, backbone.stem_reason = choice.stem, choice.reason
    log.info("backbone %s: %d features, input %s, stem %s (%s)", backbone.model_id, backbone.feature_dim,
             backbone.data_config.get("input_size"), choice.stem, choice.reason)
    return backbone


def list_backbones(pattern: str = "*", plugin: str | None = None) -> list[str]:
    """Model specs (``plugin:model``) matching a glob ``pattern``, from one plugin or all of them."""
    names: list[str] = []
    plugins = [plugin] if plugin else [p.name for p in registry.list_plugins("backbone")]
    for name in plugins:
        names.extend(f"{name}:{m}" for m in registry.create("backbone", name).list_models(pattern))
    return names


def check_feature_dim(backbone: Backbone, image_size: int | None = None) -> int:
    """Measure the pooled width with one dry forward (eval mode, no grad) and raise ``PluginError`` when the
    plugin declared another ``feature_dim``. For the contract tests: dsc trusts the declared width at run time."""
    import torch

    size = image_size or int(backbone.data_config["input_size"][-1])
    module = backbone.module
    was = module.training
    module.eval()
    with torch.no_grad():
        out = module(torch.zeros(1, 3, size, size))
    module.train(was)
    if out.ndim != 2 or int(out.shape[-1]) != backbone.feature_dim:
        raise PluginError(f"backbone {backbone.model_id} declares feature_dim {backbone.feature_dim} but outputs "
                          f"{tuple(out.shape)} features at {size}x{size}",
                          hint="the plugin must return Backbone(feature_dim=the pooled output width)")
    return int(out.shape[-1])


def unknown_model_error(plugin: str, model: str, known: list[str]) -> PluginError:
    """The error for an unknown model name, with the closest known names."""
    close = difflib.get_close_matches(model, known, n=5, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else "no similar name"
    return PluginError(f"unknown {plugin} model {model!r}",
                       hint=f"{hint}; `dsc plugins --models '{plugin}:{model[:3]}*'` lists names")


# ------------------------------------------------------------------------------------ weights files
@dataclass
class LoadReport:
    """What :func:`load_weights` matched. ``mismatched`` are keys present in both with other shapes."""

    matched: int
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]
    prefix: str = ""


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a torch file (``weights_only=True``; nested dicts unwrapped)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist", hint="pass the path of a .safetensors or .pth file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file or pickled objects refused by weights_only
        raise ModelError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}",
                         hint="use a .safetensors file or a plain tensor state dict") from exc
    for key in ("state_dict", "model", "model_state_dict", "encoder"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"checkpoint {path} holds no tensors", hint="save model.state_dict() to it")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_weights(module: torch.nn.Module, path: Path) -> LoadReport:
    """Load a weights file into ``module`` non-strictly; raise ``ModelError`` if nothing matched.

    Keys may carry a wrapper prefix (``module.``, ``encoder.``, ``backbone.``, ...): the prefix that
    matches most keys is stripped. Keys with a different shape are skipped and reported.
    """
    state = read_state_dict(path)
    own = module.state_dict()
    best_prefix, best = "", _count_matches(state, own, "")
    for prefix in _PREFIXES:
        n = _count_matches(state, own, prefix)
        if n > best:
            best_prefix, best = prefix, n
    if best_prefix:
        state = {(k[len(best_prefix):] if k.startswith(best_prefix) else k): v for k, v in state.items()}
    mismatched = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    usable = {k: v for k, v in state.items() if k in own and k not in mismatched}
    if not usable:
        raise ModelError(f"checkpoint {path} matches none of the model's {len(own)} weights",
                         hint="check that --backbone names the architecture the checkpoint was saved from")
    result = module.load_state_dict(usable, strict=False)
    report = LoadReport(len(usable), list(result.missing_keys),
                        [k for k in state if k not in own], mismatched, best_prefix)
    level = logging.WARNING if (report.missing or report.mismatched) else logging.INFO
    log.log(level, "loaded %d tensors from %s (%d missing, %d unexpected, %d shape mismatches)",
            report.matched, path, len(report.missing), len(report.unexpected), len(report.mismatched))
    return report


def _count_matches(state: dict[str, Any], own: dict[str, Any], prefix: str) -> int:
    return sum(1 for k in state if k.startswith(prefix) and k[len(prefix):] in own)
