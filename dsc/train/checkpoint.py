"""Checkpoints as safetensors + JSON: loadable without pickle (``torch.load(weights_only=True)``-safe).

A checkpoint ``RUN/checkpoints/<name>`` is three files (saved crash-safely as a whole: staged, committed by
``<name>.json.next``, renamed into place):

- ``<name>.safetensors``: model tensors, keys ``"<part>.<state-dict key>"`` (``encoder.*``, ``head.*``,
  ``classifier.*``);
- ``<name>.optim.safetensors`` (optional): optimizer state tensors and RNG states, for exact resume;
- ``<name>.json``: the training state (epoch, step, val metric, settings hash, ...), the optimizer's
  param groups and scalar state, the scheduler state and the names of the tensor files.

The JSON is written last, so a checkpoint whose JSON exists is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsc.errors import InputError, MismatchError
from dsc.outputs import atomic_write_json

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from dsc.contracts import Backbone

SCHEMA = "dsc-checkpoint/1"


def checkpoint_dir(run_dir: Path | str) -> Path:
    return Path(run_dir) / "checkpoints"


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    import torch

    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in sd["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars,
                     "tensor_params": sorted({str(pid) for pid in sd["state"]})}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, values in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run_dir: Path | str, name: str, model_parts: dict[str, nn.Module], state: dict[str, Any],
                    optimizer: torch.optim.Optimizer | None = None, scheduler: Any | None = None,
                    rng: dict[str, torch.Tensor | torch.Generator] | None = None) -> Path:
    """Write checkpoint ``name`` ("last", "best", ...) of the given model parts; returns the JSON path.

    ``state`` must be JSON-serialisable. ``rng`` maps names to generators (or their byte-tensor states);
    they are stored with the optimizer state and come back from :func:`load_checkpoint` as tensors.
    """
    import torch

    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # Crash-safe as a whole: the tensor files are staged, <name>.json.next is the commit point, then the
    # staged files are renamed into place (a crash after the commit is finished by _roll_forward on the
    # next read; one before it leaves the previous checkpoint intact and consistent).
    tensors = {f"{part}.{k}": v for part, module in model_parts.items() for k, v in module.state_dict().items()}
    _save_tensors(tensors, _staged(folder, f"{name}.safetensors"), {"format": "pt", "schema": SCHEMA})
    info: dict[str, Any] = {"schema": SCHEMA, "name": name, **state,
                            "files": {"model": f"{name}.safetensors"}, "parts": sorted(model_parts)}
    extra: dict[str, torch.Tensor] = {}
    if optimizer is not None:
        opt_tensors, info["optimizer"] = _flatten_optimizer(optimizer)
        extra.update(opt_tensors)
    if rng:
        for key, gen in rng.items():
            extra[f"rng.{key}"] = gen.get_state() if isinstance(gen, torch.Generator) else gen
        info["rng"] = sorted(rng)
    if extra or optimizer is not None:
        _save_tensors(extra, _staged(folder, f"{name}.optim.safetensors"))
        info["files"]["optim"] = f"{name}.optim.safetensors"
    else:
        _staged(folder, f"{name}.optim.safetensors").unlink(missing_ok=True)
    if scheduler is not None:
        info["scheduler"] = scheduler.state_dict()
    atomic_write_json(folder / f"{name}.json.next", info)
    _roll_forward(folder, name)
    if "optim" not in info["files"]:
        (folder / f"{name}.optim.safetensors").unlink(missing_ok=True)
    return folder / f"{name}.json"


def _staged(folder: Path, file: str) -> Path:
    return folder / f".{file}.next"


def _roll_forward(folder: Path, name: str) -> None:
    """Finish a checkpoint save committed (``<name>.json.next`` written) but not yet renamed into place."""
    pending = folder / f"{name}.json.next"
    if not pending.is_file():
        return
    for file in (f"{name}.safetensors", f"{name}.optim.safetensors"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(_staged(folder, file), folder / file)
    with contextlib.suppress(FileNotFoundError):
        os.replace(pending, folder / f"{name}.json")


def has_checkpoint(run_dir: Path | str, name: str) -> bool:
    folder = checkpoint_dir(run_dir)
    return (folder / f"{name}.json").is_file() or (folder / f"{name}.json.next").is_file()


def read_checkpoint_info(run_dir: Path | str, name: str) -> dict[str, Any]:
    """The JSON half of a checkpoint."""
    _roll_forward(checkpoint_dir(run_dir), name)
    path = checkpoint_dir(run_dir) / f"{name}.json"
    if not path.is_file():
        raise InputError(f"{run_dir} has no {name!r} checkpoint ({path} is missing)",
                         hint="train first with `dsc pretrain` / `dsc baseline`, or pick another checkpoint")
    return json.loads(path.read_text())


def load_tensors(run_dir: Path | str, name: str, device: str = "cpu") -> dict[str, torch.Tensor]:
    """All model tensors of a checkpoint (``"encoder.*"``, ``"head.*"``, ...)."""
    from safetensors.torch import load_file

    info = read_checkpoint_info(run_dir, name)
    return load_file(str(checkpoint_dir(run_dir) / info["files"]["model"]), device=device)


def load_checkpoint(run_dir: Path | str, name: str, model_parts: dict[str, nn.Module] | None = None,
                    optimizer: torch.optim.Optimizer | None = None, scheduler: Any | None = None,
                    device: str = "cpu") -> dict[str, Any]:
    """Load checkpoint ``name`` into the given parts (strict), optimizer and scheduler; return its JSON state.

    RNG states stored with the checkpoint are returned under ``"rng_states"`` (name -> uint8 tensor).
    """
    from safetensors.torch import load_file

    info = read_checkpoint_info(run_dir, name)
    tensors = load_tensors(run_dir, name, device=device)
    for part, module in (model_parts or {}).items():
        prefix = f"{part}."
        sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not sub:
            raise MismatchError(f"checkpoint {name!r} of {run_dir} has no {part!r} tensors",
                                hint=f"it holds {', '.join(info.get('parts', []))}")
        try:
            missing, unexpected = module.load_state_dict(sub, strict=False)
        except RuntimeError as exc:  # shape mismatch
            raise MismatchError(f"checkpoint {name!r} does not fit the {part} model: {str(exc)[:300]}",
                                hint="the backbone or head settings differ from the run that wrote it") from None
        if missing or unexpected:
            raise MismatchError(f"checkpoint {name!r} does not fit the {part} model "
                                f"(missing {missing[:3]}, unexpected {unexpected[:3]})",
                                hint="the backbone or head settings differ from the run that wrote it")
    extra = {}
    if "optim" in info.get("files", {}):
        extra = load_file(str(checkpoint_dir(run_dir) / info["files"]["optim"]), device="cpu")
    if optimizer is not None:
        if "optimizer" not in info:
            raise InputError(f"checkpoint {name!r} of {run_dir} has no optimizer state",
                             hint="resume from the 'last' checkpoint")
        optimizer.load_state_dict(_unflatten_optimizer(extra, info["optimizer"]))
    if scheduler is not None and "scheduler" in info:
        scheduler.load_state_dict(info["scheduler"])
    info["rng_states"] = {k[len("rng."):]: v for k, v in extra.items() if k.startswith("rng.")}
    return info


def load_encoder(run_dir: Path | str, which: str = "best", device: str = "cpu") -> tuple[Backbone, dict[str, Any]]:
    """Rebuild the run's backbone from ``run.json`` and load the checkpoint's ``encoder.*`` tensors.

    Returns the backbone (module in eval mode, on ``device``) and the run's ``run.json`` content.
    """
    from dsc.backbones import create_backbone
    from dsc.train.run_dir import read_run_info

    run_info = read_run_info(run_dir)
    bb = run_info.get("backbone") or {}
    if "name" not in bb:
        raise InputError(f"{run_dir}/run.json records no backbone", hint="is this a dsc pretrain/baseline run?")
    # the stem the run resolved (runs made before --stem existed used the library's ImageNet stem)
    backbone = create_backbone(bb["name"], pretrained=False, checkpoint=None, stem=bb.get("stem") or "imagenet")
    recorded = bb.get("feature_dim")
    if recorded is not None and int(recorded) != backbone.feature_dim:
        raise MismatchError(f"{run_dir}/run.json records {recorded} features for {bb['name']}, but that backbone "
                            f"now builds {backbone.feature_dim}",
                            hint="load the run with the dsc and plugin versions that made it")
    load_checkpoint(run_dir, which, {"encoder": backbone.module}, device="cpu")
    backbone.module.to(device).eval()
    return backbone, run_info
