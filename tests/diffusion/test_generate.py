"""Faithfulness of the batched generation core to stock diffusers pipelines (tiny random model, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dsc.diffusion.generate import (
    Request,
    denoise,
    encode_prompts,
    encode_source,
    generate,
    start_index,
    to_uint8,
)
from dsc.diffusion.schedulers import make_scheduler
from dsc.errors import ConfigError
from dsc.threads import one_torch_thread

RES = 64
STEPS = 8


def _images(n: int) -> np.ndarray:
    """Smooth random images (something a VAE can encode)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (n, 8, 8, 3)).astype(np.float32)
    big = small.repeat(8, axis=1).repeat(8, axis=2)
    return big.clip(0, 255).astype(np.uint8)


def _masks(n: int) -> np.ndarray:
    m = np.zeros((n, RES, RES), dtype=bool)
    m[:, 16:48, 20:44] = True
    return m


@pytest.fixture(autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline

    from dsc.diffusion.tiny import tiny_model_path

    folder = tiny_model_path(tmp_path_factory.mktemp("cache"))
    img2img = StableDiffusionImg2ImgPipeline.from_pretrained(folder, safety_checker=None,
                                                            requires_safety_checker=False)
    img2img.set_progress_bar_config(disable=True)
    inpaint = StableDiffusionInpaintPipeline(**img2img.components)
    inpaint.set_progress_bar_config(disable=True)
    return img2img, inpaint


def _embeds(pipe):
    cond = encode_prompts(pipe.tokenizer, pipe.text_encoder, ["a photo of a gear", "a photo of a bolt"])
    uncond = encode_prompts(pipe.tokenizer, pipe.text_encoder, [""])[0]
    return cond, uncond


# (source, prompt, strength, seed): mixed strengths share one batch
PLAN = [(0, 0, 0.5, 11), (0, 0, 1.0, 12), (1, 1, 0.3, 13), (2, 0, 0.5, 14), (1, 1, 0.75, 15)]


def _requests(pipe, sources, cond, uncond):
    return [Request(sources[s], cond[p], uncond, st, torch.Generator().manual_seed(seed))
            for s, p, st, seed in PLAN]


@pytest.mark.parametrize("scheduler", ["default", "euler-a", "dpm"])
def test_batched_img2img_matches_stock_pipeline(pipes, scheduler):
    pipe, _ = pipes
    pipe.scheduler = make_scheduler(scheduler, pipes[1].scheduler)
    images = _images(3)
    cond, uncond = _embeds(pipe)
    sources = [encode_source(pipe.vae, im) for im in images]
    ours = denoise(pipe.vae, pipe.unet, pipe.scheduler, _requests(pipe, sources, cond, uncond),
                   steps=STEPS, guidance=7.5)
    for k, (s, p, st, seed) in enumerate(PLAN):
        ref = pipe(prompt_embeds=cond[p:p + 1], negative_prompt_embeds=uncond[None],
                   image=torch.from_numpy(images[s]).permute(2, 0, 1)[None].float() / 255, strength=st,
                   num_inference_steps=STEPS, guidance_scale=7.5, generator=torch.Generator().manual_seed(seed),
                   output_type="pt").images
        torch.testing.assert_close(ours[k:k + 1], ref, atol=2e-3, rtol=0)


@pytest.mark.parametrize("nine", [False, True], ids=["latent-blend", "inpainting-unet"])
def test_batched_inpaint_matches_stock_pipeline_and_keeps_outside_pixels(pipes, nine, tmp_path_factory):
    from diffusers import StableDiffusionInpaintPipeline

    _, pipe = pipes
    if nine:
        from dsc.diffusion.tiny import tiny_model_path

        folder = tiny_model_path(tmp_path_factory.mktemp("cache9"), inpainting=True)
        pipe = StableDiffusionInpaintPipeline.from_pretrained(folder, safety_checker=None,
                                                              requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
    images, masks = _images(3), _masks(3)
    cond, uncond = _embeds(pipe)
    sources = [encode_source(pipe.vae, im, m, masked_latents=nine) for im, m in zip(images, masks, strict=True)]
    reqs = _requests(pipe, sources, cond, uncond)
    ours = denoise(pipe.vae, pipe.unet, pipe.scheduler, reqs, steps=STEPS, guidance=7.5, inpaint=True)
    for k, (s, p, st, seed) in enumerate(PLAN):
        ref = pipe(prompt_embeds=cond[p:p + 1], negative_prompt_embeds=uncond[None],
                   image=torch.from_numpy(images[s]).permute(2, 0, 1)[None].float() / 255,
                   mask_image=torch.from_numpy(masks[s]).float()[None, None], strength=st, height=RES, width=RES,
                   num_inference_steps=STEPS, guidance_scale=7.5, generator=torch.Generator().manual_seed(seed),
                   output_type="pt").images
        torch.testing.assert_close(ours[k:k + 1], ref, atol=2e-3, rtol=0)
    # with pasting, pixels outside the edit mask are exactly the source's; inside they changed
    for r in reqs:
        r.generator.manual_seed(1)
    out = generate(pipe.vae, pipe.unet, pipe.scheduler, reqs, steps=STEPS, guidance=7.5, inpaint=True)
    for k, (s, *_rest) in enumerate(PLAN):
        np.testing.assert_array_equal(out[k][~masks[s]], images[s][~masks[s]])
        assert np.abs(out[k][masks[s]].astype(int) - images[s][masks[s]]).mean() > 1


def test_results_do_not_depend_on_batch_composition(pipes):
    pipe, _ = pipes
    pipe.scheduler = make_scheduler("default", pipes[1].scheduler)
    images = _images(3)
    cond, uncond = _embeds(pipe)
    sources = [encode_source(pipe.vae, im) for im in images]
    together = generate(pipe.vae, pipe.unet, pipe.scheduler, _requests(pipe, sources, cond, uncond),
                        steps=STEPS, guidance=7.5)
    reqs = _requests(pipe, sources, cond, uncond)
    alone = np.concatenate([generate(pipe.vae, pipe.unet, pipe.scheduler, [r], steps=STEPS, guidance=7.5)
                            for r in reqs])
    assert np.abs(together.astype(int) - alone).max() <= 1


def test_strength_that_runs_no_step_is_refused(pipes):
    pipe, _ = pipes
    cond, uncond = _embeds(pipe)
    src = encode_source(pipe.vae, _images(1)[0])
    with pytest.raises(ConfigError, match="no denoising step"):
        denoise(pipe.vae, pipe.unet, pipe.scheduler, [Request(src, cond[0], uncond, 0.05, torch.Generator())],
                steps=STEPS, guidance=7.5)
    assert start_index(50, 0.25) == 38 and start_index(50, 1.0) == 0
    assert to_uint8(torch.ones(1, 3, 2, 2)).max() == 255
