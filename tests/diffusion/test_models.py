from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dsc.diffusion.models import load_components
from dsc.diffusion.tiny import tiny_model_path
from dsc.errors import InputError, ModelError


def test_tiny_model_is_a_stock_sd_folder(tiny_sd_path: Path) -> None:
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

    index = json.loads((tiny_sd_path / "model_index.json").read_text())
    assert index["unet"][1] == "UNet2DConditionModel" and index["vae"][1] == "AutoencoderKL"
    assert index["text_encoder"][1] == "CLIPTextModel" and index["tokenizer"][1] == "CLIPTokenizer"
    assert (tiny_sd_path / "tokenizer" / "vocab.json").is_file() and (tiny_sd_path / "tokenizer" / "merges.txt").is_file()
    size = sum(f.stat().st_size for f in tiny_sd_path.rglob("*") if f.is_file())
    assert size < 10 * 2**20
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_path)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.vae_scale_factor == 8 and pipe.vae.config.latent_channels == 4
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    out = pipe("a photo of a motor", num_inference_steps=2, output_type="np",
               generator=torch.Generator().manual_seed(0)).images
    assert out.shape == (1, 64, 64, 3)
    latents = pipe.vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mean
    assert latents.shape == (1, 4, 8, 8)
    i2i = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_sd_path)
    i2i.set_progress_bar_config(disable=True)
    img = i2i("a photo", image=torch.zeros(1, 3, 64, 64), strength=0.5, num_inference_steps=2,
              output_type="np").images
    assert img.shape == (1, 64, 64, 3) and np.isfinite(img).all()


def test_tiny_model_is_deterministic(tmp_path: Path, tiny_sd_path: Path) -> None:
    other = tiny_model_path(tmp_path / "cache")
    assert other != tiny_sd_path
    a, b = load_components(str(tiny_sd_path)), load_components(str(other))
    assert a.text_fingerprint() == b.text_fingerprint()
    for x, y in zip(a.unet.parameters(), b.unet.parameters(), strict=True):
        assert torch.equal(x, y)
    assert tiny_model_path(tmp_path / "cache") == other  # built once, then reused
    assert not [p for p in (tmp_path / "cache" / "models").iterdir() if p.name.startswith(".")]


def test_tiny_inpaint_variant_loads_in_stock_inpaint_pipeline(dsc_cache: Path) -> None:
    comp = load_components("tiny", inpainting=True)
    assert comp.is_inpainting and comp.model_id == "tiny-inpaint" and comp.is_tiny
    pipe = comp.pipeline("StableDiffusionInpaintPipeline")
    out = pipe("a photo", image=torch.zeros(1, 3, 64, 64), mask_image=torch.ones(1, 1, 64, 64),
               num_inference_steps=2, output_type="np").images
    assert out.shape == (1, 64, 64, 3)


def test_load_components_frozen_cpu_sdpa(components, caplog) -> None:
    from diffusers.models.attention_processor import AttnProcessor2_0

    c = components
    assert c.device == torch.device("cpu") and c.dtype == torch.float32 and c.is_tiny
    assert c.vae_scale_factor == 8 and c.embedding_dim == 32 and c.base_vocab_size == len(c.tokenizer)
    for module in (c.unet, c.vae, c.text_encoder):
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
    assert all(isinstance(p, AttnProcessor2_0) for p in c.unet.attn_processors.values())
    pipe = c.pipeline("StableDiffusionImg2ImgPipeline")
    assert pipe.unet is c.unet and pipe.text_encoder is c.text_encoder and pipe.safety_checker is None
    desc = c.describe()
    assert desc["source"] == "folder" and desc["text_fingerprint"] == c.text_fingerprint()


def test_tiny_name_warns(caplog, dsc_cache: Path) -> None:
    with caplog.at_level("WARNING"):
        comp = load_components("tiny")
    assert comp.model_id == "tiny" and comp.source == "tiny"
    assert "meaningless" in caplog.text


def test_bfloat16_on_cpu(tiny_sd_path: Path) -> None:
    comp = load_components(str(tiny_sd_path), dtype="bfloat16")
    assert comp.unet.dtype == torch.bfloat16
    # the fingerprint ignores the dtype the model was loaded in
    assert comp.text_fingerprint() == load_components(str(tiny_sd_path)).text_fingerprint()


def test_missing_hub_model_offline_says_how_to_get_it() -> None:
    with pytest.raises(ModelError) as info:
        load_components("someone/not-a-cached-model")
    msg = str(info.value)
    assert "hf download someone/not-a-cached-model" in msg and "\n" not in msg


def test_bad_model_arguments(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_components("./missing-folder")
    with pytest.raises(ModelError, match="does not exist"):
        load_components("weights/model.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="model_index.json"):
        load_components(str(tmp_path / "empty"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelError, match="not a model checkpoint"):
        load_components(str(tmp_path / "notes.txt"))
    with pytest.raises(ModelError, match="repo id"):
        load_components("not a model")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="cannot load"):
        load_components(str(broken))


def test_device_and_dtype_choice() -> None:
    from dsc.diffusion.device import pick_device, pick_dtype

    assert pick_device("cpu").type == "cpu"
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert pick_dtype("auto", torch.device("cuda")) == torch.float16
    assert pick_dtype("bf16") == torch.bfloat16
    with pytest.raises(InputError):
        pick_dtype("float8")
    with pytest.raises(InputError):
        pick_device("tpu-9")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            pick_device("cuda")
        assert pick_device("auto").type in ("cpu", "mps")
