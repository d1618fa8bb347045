"""Source-free (text-to-image) requests of the batched core: image for image what stock
``StableDiffusionPipeline`` makes with the same prompt embeddings, generator, scheduler, steps and guidance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsc.diffusion.generate import Request, blank_source, denoise, encode_prompts, encode_source, generate
from dsc.diffusion.schedulers import make_scheduler
from dsc.threads import one_torch_thread

RES = 64
STEPS = 8


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    from diffusers import StableDiffusionPipeline

    from dsc.diffusion.tiny import tiny_model_path

    folder = tiny_model_path(tmp_path_factory.mktemp("cache"))
    p = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    p.set_progress_bar_config(disable=True)
    return p


def _embeds(pipe):
    cond = encode_prompts(pipe.tokenizer, pipe.text_encoder, ["a photo of a gear", "a photo of a bolt"])
    uncond = encode_prompts(pipe.tokenizer, pipe.text_encoder, [""])[0]
    return cond, uncond


# (prompt, seed): one batch of source-free requests
PLAN = [(0, 21), (1, 22), (0, 23), (1, 24)]


@pytest.mark.parametrize("scheduler", ["default", "euler-a", "dpm", "heun"])
def test_batched_text_to_image_matches_stock_pipeline(pipe, scheduler):
    base = pipe.scheduler
    pipe.scheduler = make_scheduler(scheduler, base)
    try:
        cond, uncond = _embeds(pipe)
        blank = blank_source(pipe.vae, pipe.unet, RES)
        reqs = [Request(blank, cond[p], uncond, 1.0, torch.Generator().manual_seed(seed)) for p, seed in PLAN]
        ours = denoise(pipe.vae, pipe.unet, pipe.scheduler, reqs, steps=STEPS, guidance=7.5)
        for k, (p, seed) in enumerate(PLAN):
            ref = pipe(prompt_embeds=cond[p:p + 1], negative_prompt_embeds=uncond[None], height=RES, width=RES,
                       num_inference_steps=STEPS, guidance_scale=7.5, generator=torch.Generator().manual_seed(seed),
                       output_type="pt").images
            torch.testing.assert_close(ours[k:k + 1], ref, atol=2e-3, rtol=0)
    finally:
        pipe.scheduler = base


def test_source_free_and_image_requests_share_a_batch_without_changing_either(pipe):
    """A text-to-image request is not an img2img request at strength 1 (that one starts from a noised VAE
    sample); batched together, each equals its own run alone."""
    cond, uncond = _embeds(pipe)
    pixels = np.full((RES, RES, 3), 120, dtype=np.uint8)
    src, blank = encode_source(pipe.vae, pixels), blank_source(pipe.vae, pipe.unet, RES)

    def reqs():
        return [Request(blank, cond[0], uncond, 1.0, torch.Generator().manual_seed(5)),
                Request(src, cond[0], uncond, 1.0, torch.Generator().manual_seed(5))]

    together = generate(pipe.vae, pipe.unet, pipe.scheduler, reqs(), steps=STEPS, guidance=7.5)
    alone = np.concatenate([generate(pipe.vae, pipe.unet, pipe.scheduler, [r], steps=STEPS, guidance=7.5)
                            for r in reqs()])
    assert np.abs(together.astype(int) - alone).max() <= 1
    assert np.abs(together[0].astype(int) - together[1]).mean() > 1


def test_source_free_requests_refuse_partial_strength_and_masks(pipe):
    cond, uncond = _embeds(pipe)
    blank = blank_source(pipe.vae, pipe.unet, RES)
    with pytest.raises(ValueError, match="strength 1.0"):
        denoise(pipe.vae, pipe.unet, pipe.scheduler, [Request(blank, cond[0], uncond, 0.5, torch.Generator())],
                steps=STEPS, guidance=7.5)
    with pytest.raises(ValueError, match="edit mask"):
        denoise(pipe.vae, pipe.unet, pipe.scheduler, [Request(blank, cond[0], uncond, 1.0, torch.Generator())],
                steps=STEPS, guidance=7.5, inpaint=True)
