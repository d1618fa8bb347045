"""A tiny random-weight Stable Diffusion, built in code and saved once as a normal diffusers folder.

It has the component classes of Stable Diffusion 1.x (``UNet2DConditionModel``, ``AutoencoderKL`` with a
downsampling factor of 8 and 4 latent channels, ``CLIPTextModel`` + ``CLIPTokenizer`` feeding cross-attention,
``PNDMScheduler``), so latents are image/8 as with real weights and stock diffusers pipelines load it. Its
weights are random: its images are meaningless. It exists for tests, benchmarks and the demo, offline.

The CLIP tokenizer is built here too (a byte-level vocabulary plus a few merges), nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

#: Names accepted by ``--model`` for the tiny model.
TINY_NAMES = ("tiny", "tiny-inpaint")
#: Bump when the architecture or the recipe changes: a new folder is built, old ones are left alone.
TINY_VERSION = 1
SEED = 0
HIDDEN = 32  # text hidden size = cross-attention dim
MAX_LENGTH = 77
WARNING = "using the tiny random-weight model: images are meaningless; for tests and the demo"

#: Words that get whole-word merges, so common prompt words are single tokens as with real CLIP.
_WORDS = ("a", "photo", "of", "the", "an", "in", "on", "with", "and", "rendering", "cropped", "close", "up",
          "good", "bright", "dark", "clean", "dirty", "small", "large", "nice", "weird", "cool", "picture",
          "motor", "part", "car", "gear", "bolt", "bracket", "nut", "object")


def default_cache_dir() -> Path:
    """dsc's cache directory: ``$DSC_CACHE_DIR``, else ``~/.cache/dsc``."""
    env = os.environ.get("DSC_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dsc"


def _bytes_to_unicode() -> dict[int, str]:
    """The byte -> printable character table of byte-level BPE (GPT-2 / CLIP)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def tokenizer_files() -> tuple[dict[str, int], list[str]]:
    """A small CLIP vocabulary (every byte, with and without ``</w>``, a few whole words) and its merges."""
    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for tok in chars + [c + "</w>" for c in chars]:
        vocab.setdefault(tok, len(vocab))
    merges: list[str] = []
    for word in _WORDS:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            left, right = pieces[0], pieces[1]
            merge = f"{left} {right}"
            if merge not in merges:
                merges.append(merge)
            vocab.setdefault(left + right, len(vocab))
            pieces = [left + right, *pieces[2:]]
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return vocab, merges


def _modules(vocab: dict[str, int], inpainting: bool):
    """UNet (latent 8x8 at 64 px), VAE (factor 8, 4 latent channels) and CLIP text encoder, random weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8,
        in_channels=9 if inpainting else 4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=HIDDEN, attention_head_dim=8, norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 16, 32, 32), in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=8, sample_size=64,
    )
    text_config = CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=HIDDEN, intermediate_size=64, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=MAX_LENGTH, projection_dim=HIDDEN,
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    text_encoder = CLIPTextModel(text_config)
    return unet, vae, text_encoder


def _build(folder: Path, inpainting: bool) -> None:
    import torch
    from diffusers import PNDMScheduler, StableDiffusionPipeline
    from transformers import CLIPTokenizer

    vocab, merges = tokenizer_files()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges],
                              model_max_length=MAX_LENGTH)

    with torch.random.fork_rng(devices=[]):  # fixed weights; the caller's random state is untouched
        torch.manual_seed(SEED + (1 if inpainting else 0))
        unet, vae, text_encoder = _modules(vocab, inpainting)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, skip_prk_steps=True, set_alpha_to_one=False,
                              steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, unet=unet, text_encoder=text_encoder, tokenizer=tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    from dsc.diffusion.models import quiet_loading

    with quiet_loading():
        pipe.save_pretrained(folder, safe_serialization=True)
    # the classic CLIP files too, for tokenizers that read vocab.json + merges.txt
    (folder / "tokenizer" / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "tokenizer" / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n",
                                                     encoding="utf-8")
    (folder / "DSC_TINY_MODEL.txt").write_text(
        "A tiny random-weight Stable Diffusion built by dsc (dsc.diffusion.tiny). Its images are meaningless.\n",
        encoding="utf-8")


def tiny_model_path(cache_dir: Path | str | None = None, *, inpainting: bool = False) -> Path:
    """The folder of the tiny model, built on first use (deterministically, atomically) in dsc's cache.

    ``inpainting=True`` gives the 9-input-channel variant that ``StableDiffusionInpaintPipeline`` expects.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    name = f"tiny-sd{'-inpaint' if inpainting else ''}-v{TINY_VERSION}"
    folder = root / "models" / name
    if (folder / "model_index.json").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder.parent))
    try:
        _build(tmp, inpainting)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished first
            if not (folder / "model_index.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.debug("built the tiny model in %s", folder)
    return folder
