"""Loading Stable Diffusion: a hub repo id, a local diffusers folder, a single-file checkpoint, or ``tiny``.

``load_components`` returns the parts (VAE, UNet, text encoder, tokenizer, scheduler) on one device and in one
dtype, frozen (``requires_grad=False``, eval mode), with where they came from, so that every command loads a
model the same way and records the same provenance. Stock diffusers pipelines are built from the same
objects with ``SDComponents.pipeline(cls)``, which is what keeps dsc's own loops comparable to stock diffusers.

A hub id is loaded from its snapshot in the local Hugging Face cache when there is one, and the hub is then
never contacted. Nothing is downloaded when ``local_files_only`` is set or ``HF_HUB_OFFLINE=1``: a model that
is not cached raises ``ModelError`` at once, naming the cache folder looked in and the ``hf download`` command
that fills it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsc import console
from dsc.errors import ModelError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin")
_TRUE = {"1", "true", "yes", "on"}


def offline() -> bool:
    """True when the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


@dataclass
class SDComponents:
    """A loaded Stable Diffusion model, frozen, on ``device`` in ``dtype``.

    ``model_id`` is the hub id or the absolute path it was loaded from; ``revision`` the hub commit when known
    (else what was asked for); ``source`` one of ``tiny``, ``hub``, ``folder``, ``single-file``.
    """

    vae: Any
    unet: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    model_id: str
    revision: str | None
    device: torch.device
    dtype: torch.dtype
    is_tiny: bool
    source: str
    #: rows of the text-encoder embedding that belong to the model (tokens added later are not counted)
    base_vocab_size: int = 0
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def vae_scale_factor(self) -> int:
        """Image pixels per latent pixel (8 for Stable Diffusion)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def embedding_dim(self) -> int:
        return int(self.text_encoder.get_input_embeddings().weight.shape[-1])

    @property
    def is_inpainting(self) -> bool:
        """True when the UNet takes the 9 input channels of an inpainting model."""
        return int(self.unet.config.in_channels) == 9

    def text_fingerprint(self) -> str:
        """Identity of the tokenizer and of the model's own embedding rows. Token manifests record it, so
        tokens are never installed into another text encoder. It does not depend on the dtype the model was
        loaded in: the rows enter as their sign pattern (kept by every rounding), plus shape and vocabulary.
        (All SD 1.x releases share one CLIP text encoder, so they share a fingerprint, as they share tokens.)"""
        if self._fingerprint is None:
            import numpy as np

            h = hashlib.sha256()
            vocab = self.tokenizer.get_vocab()
            base = sorted((t, i) for t, i in vocab.items() if i < self.base_vocab_size)
            h.update(json.dumps(base, ensure_ascii=False).encode())
            weight = self.text_encoder.get_input_embeddings().weight[: self.base_vocab_size].detach()
            h.update(str(tuple(weight.shape)).encode())
            h.update(np.packbits((weight > 0).cpu().numpy()).tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    def pipeline(self, cls: type | str = "StableDiffusionPipeline", **kwargs: Any) -> Any:
        """A stock diffusers pipeline built from these very components (no safety checker, no progress bar).

        ``cls`` is a pipeline class or its name in ``diffusers`` (e.g. ``"StableDiffusionImg2ImgPipeline"``,
        ``"StableDiffusionInpaintPipeline"``). Keyword arguments replace components (e.g. ``scheduler=``).
        """
        import diffusers

        if isinstance(cls, str):
            try:
                cls = getattr(diffusers, cls)
            except AttributeError:
                raise ModelError(f"diffusers has no pipeline {cls!r}") from None
        parts = dict(vae=self.vae, unet=self.unet, text_encoder=self.text_encoder, tokenizer=self.tokenizer,
                     scheduler=self.scheduler, safety_checker=None, feature_extractor=None,
                     requires_safety_checker=False)
        parts.update(kwargs)
        pipe = cls(**parts)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def describe(self) -> dict[str, Any]:
        """What outputs record about the model."""
        return {"model": self.model_id, "revision": self.revision, "source": self.source, "tiny": self.is_tiny,
                "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
                "text_fingerprint": self.text_fingerprint(), "embedding_dim": self.embedding_dim,
                "inpainting_unet": self.is_inpainting}


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence diffusers/transformers loading chatter (progress bars, info logs, deprecation notes)."""
    import warnings

    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    levels = (dlog.get_verbosity(), tlog.get_verbosity())
    bars = (dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled())
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        dlog.set_verbosity(levels[0])
        tlog.set_verbosity(levels[1])
        if bars[0]:
            dlog.enable_progress_bar()
        if bars[1]:
            tlog.enable_progress_bar()


def _hint_for(model: str, local_only: bool) -> str:
    how = (f"download it once with `hf download {model}` (or `huggingface-cli download {model}`), "
           "or pass a local diffusers folder or a .safetensors checkpoint with --model")
    if local_only:
        how += f"; offline mode is on ({_offline_reason()})"
    return how + "; `--model tiny` runs without weights (meaningless images)"


def _offline_reason() -> str:
    return "HF_HUB_OFFLINE=1" if offline() else "--local-files-only; --allow-download lets dsc download it"


def hub_cache_folder(repo: str) -> Path:
    """Where the Hugging Face cache keeps ``repo`` (``HF_HUB_CACHE`` / ``HF_HOME``), present or not."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))


def cached_snapshot(repo: str, revision: str | None) -> Path | None:
    """The cached snapshot folder of a diffusers hub repo (the one holding its ``model_index.json``), or None.
    Reads the local cache only."""
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo, "model_index.json", revision=revision)
    except Exception:  # noqa: BLE001 - a malformed id or cache reads as "not cached"
        return None
    return Path(hit).parent if isinstance(hit, str) and Path(hit).is_file() else None


def _resolve(model: str, inpainting: bool) -> tuple[str, str, bool]:
    """(where to load from, source kind, is_tiny)."""
    from dsc.diffusion.tiny import TINY_NAMES, WARNING, tiny_model_path

    if model in TINY_NAMES:
        log.warning(WARNING)
        return str(tiny_model_path(inpainting=inpainting or model == "tiny-inpaint")), "tiny", True
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix.lower() not in SINGLE_FILE_SUFFIXES:
            raise ModelError(f"{path} is not a model checkpoint",
                             hint=f"pass a diffusers folder or a file ending in {', '.join(SINGLE_FILE_SUFFIXES)}")
        return str(path.resolve()), "single-file", False
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelError(f"{path} is not a diffusers model folder (no model_index.json)",
                             hint="save one with pipe.save_pretrained(FOLDER), or pass a hub id")
        tiny = (path / "DSC_TINY_MODEL.txt").is_file()
        if tiny:
            log.warning(WARNING)
        return str(path.resolve()), "folder", tiny
    looks_like_path = (model.startswith((".", "/", "~")) or model.lower().endswith(SINGLE_FILE_SUFFIXES)
                       or model.count("/") > 1 or os.sep == "\\" and "\\" in model)
    if looks_like_path:
        raise ModelError(f"model path {model} does not exist", hint="check the path given to --model")
    if model.count("/") != 1 or any(not part for part in model.split("/")):
        raise ModelError(f"{model!r} is neither a local path nor a Hugging Face repo id (owner/name)",
                         hint="e.g. --model CompVis/stable-diffusion-v1-4, --model ./my-sd-folder or --model tiny")
    return model, "hub", False


def _hub_commit(repo: str, revision: str | None) -> str | None:
    """The commit of the cached snapshot that was loaded (offline, from the local cache)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo, "model_index.json", revision=revision)
    except Exception:  # noqa: BLE001 - provenance only; never fail a run over it
        return revision
    if isinstance(hit, str) and "/snapshots/" in hit.replace(os.sep, "/"):
        return hit.replace(os.sep, "/").split("/snapshots/")[1].split("/")[0]
    return revision


def _load_error(model: str, repo: str, source: str, snapshot: Path | None, exc: BaseException) -> ModelError:
    """One line for a model that did not load: for a hub id, the cache folder looked in (a download that
    failed, or a cached snapshot missing files) and how to fill it; else the loader's first line."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if source == "hub" and snapshot is None:
        return ModelError(f"Stable Diffusion model {model!r} is not in the local Hugging Face cache "
                          f"({hub_cache_folder(repo)}) and downloading it failed ({type(exc).__name__})",
                          hint=_hint_for(model, False))
    if source == "hub":
        return ModelError(f"the cached Stable Diffusion model {model!r} ({snapshot}) is incomplete: {first[:200]}",
                          hint=_hint_for(model, False))
    return ModelError(f"cannot load model {model!r}: {first[:300]}", hint=_hint_for(model, False))


def load_components(model: str, *, revision: str | None = None, local_files_only: bool = False,
                    device: str | torch.device = "auto", dtype: str | torch.dtype = "auto",
                    inpainting: bool = False) -> SDComponents:
    """Load a Stable Diffusion model's components, frozen, on one device.

    ``model``: a hub repo id, a local diffusers folder, a single-file checkpoint (``.safetensors``/``.ckpt``,
    read with ``from_single_file``) or ``tiny`` (``tiny-inpaint`` for the 9-channel inpainting variant).
    A cached hub id is read from its snapshot folder; ``local_files_only`` (or ``HF_HUB_OFFLINE=1``) never
    contacts the hub, and without them only a model missing from the cache is downloaded. ``device="auto"``: CUDA > MPS >
    CPU; ``dtype="auto"``: float16 on CUDA, float32 elsewhere. On CUDA the UNet uses channels_last; attention
    is diffusers' default SDPA processor. ``inpainting=True`` asks for an inpainting model: ``tiny`` then
    means its 9-channel variant; for other models a 4-channel UNet is accepted with a note (stock
    ``StableDiffusionInpaintPipeline`` then blends latents, as DA-Fusion did with SD 1.4).
    Raises ``ModelError`` (missing/unreadable weights, one line with how to get them).
    """
    from dsc.diffusion.device import pick_device, pick_dtype

    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    where, source, is_tiny = _resolve(model, inpainting)
    local_only = bool(local_files_only or offline() or source != "hub")
    snapshot = _cached_hub_snapshot(model, where, revision, local_only) if source == "hub" else None
    pipe = _load_pipeline(model, where, source, snapshot, revision, local_only, dt)
    if inpainting and int(pipe.unet.config.in_channels) != 9:
        log.info("%s has a 4-channel UNet: inpainting will blend latents outside the mask (as DA-Fusion did)",
                 model)
    _freeze(pipe, dev)
    base_vocab = min(len(pipe.tokenizer), int(pipe.text_encoder.get_input_embeddings().weight.shape[0]))
    return SDComponents(
        vae=pipe.vae, unet=pipe.unet, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
        scheduler=pipe.scheduler, model_id=where if source != "tiny" else "tiny" + ("-inpaint" if
                                                                               pipe.unet.config.in_channels == 9 else ""),
        revision=(snapshot.name if snapshot is not None else _hub_commit(where, revision)) if source == "hub"
        else revision, device=dev, dtype=dt,
        is_tiny=is_tiny, source=source, base_vocab_size=base_vocab)


def _cached_hub_snapshot(model: str, repo: str, revision: str | None, local_only: bool) -> Path | None:
    """The cached snapshot folder of a hub id (a cached model never contacts the hub); ``None``: download it.
    Raises ``ModelError`` when it is not cached and the hub may not be contacted."""
    snapshot = cached_snapshot(repo, revision)
    if snapshot is None and local_only:
        raise ModelError(f"Stable Diffusion model {model!r} is not in the local Hugging Face cache "
                         f"({hub_cache_folder(repo)})", hint=_hint_for(model, True))
    return snapshot


def _load_pipeline(model: str, where: str, source: str, snapshot: Path | None, revision: str | None,
                   local_only: bool, dt: torch.dtype) -> Any:
    """The stock ``StableDiffusionPipeline`` (no safety checker); a failure is one ``ModelError`` line."""
    common: dict[str, Any] = {"torch_dtype": dt, "safety_checker": None, "requires_safety_checker": False}
    load_from = str(snapshot) if snapshot is not None else where
    try:
        from diffusers import StableDiffusionPipeline

        with quiet_loading(), console.status(f"loading Stable Diffusion ({model})…"):
            if source == "single-file":
                return StableDiffusionPipeline.from_single_file(where, local_files_only=local_only, **common)
            if source == "hub" and snapshot is None:  # asked to download (--allow-download, online)
                return StableDiffusionPipeline.from_pretrained(where, revision=revision, **common)
            return StableDiffusionPipeline.from_pretrained(load_from, local_files_only=True, **common)
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
        raise _load_error(model, where, source, snapshot, exc) from None


def _freeze(pipe: Any, dev: torch.device) -> None:
    """VAE, UNet and text encoder frozen, in eval mode, on ``dev``; channels_last UNet on CUDA."""
    import torch

    for module in (pipe.vae, pipe.unet, pipe.text_encoder):
        module.requires_grad_(False)
        module.eval()
        module.to(dev)
    if dev.type == "cuda":
        pipe.unet.to(memory_format=torch.channels_last)
