"""`dsc invert --method lora|ti+lora` on the tiny model: what trains, what the files are, resume, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dsc.diffusion import inversion, lora, lora_options
from dsc.diffusion import invert as I
from dsc.diffusion import tokens as T
from dsc.errors import ConfigError, MismatchError
from dsc.settings import InvertSettings
from dsc.testing import square_store

FAST = dict(steps=4, resolution=64, batch_size=2, templates="photo")


def _settings(tiny_sd_path: Path, **kw) -> InvertSettings:
    return InvertSettings(model=str(tiny_sd_path), **{**FAST, **kw})


def _class_latents(components, n: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, (n, 8, 8, 3)).astype(np.uint8).repeat(8, 1).repeat(8, 2)
    return inversion.encode_latents(components, inversion.prepare_pixels(images, 64))


def _jobs(names=("brake caliper", "gear")) -> list[inversion.ClassJob]:
    toks = T.tokens_for_classes(list(names))
    return [inversion.ClassJob(n, i, toks[n], np.arange(2)) for i, n in enumerate(names)]


def _base(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict without the LoRA's tensors, under the names the weights had before peft wrapped them."""
    return {k.replace(".base_layer", ""): v for k, v in state.items() if ".lora_" not in k}


def test_ti_lora_changes_only_the_lora_and_the_token_rows(components, tmp_path: Path, tiny_sd_path: Path) -> None:
    before = {part: {k: v.clone() for k, v in getattr(components, part).state_dict().items()}
              for part in ("unet", "text_encoder", "vae")}
    jobs = _jobs()
    latents = [_class_latents(components, seed=i) for i in range(2)]
    settings = _settings(tiny_sd_path, method="ti+lora", num_vectors=2, lora_lr=1e-2)
    init = {j.name: inversion.initial_vectors(components, j.name, 2) for j in jobs}
    result = lora.train_joint(components, jobs, latents, settings, tmp_path)
    assert len(result.losses) == 4 and set(result.vectors) == {"brake caliper", "gear"}
    unet = components.unet.state_dict()
    assert _base(unet).keys() == before["unet"].keys()
    for k, v in _base(unet).items():
        assert torch.equal(v, before["unet"][k]), k
    trained = {k: v for k, v in unet.items() if ".lora_B." in k}
    assert trained and all(v.abs().max() > 0 for v in trained.values())  # B started at zero: every one moved
    for k, v in components.vae.state_dict().items():
        assert torch.equal(v, before["vae"][k]), k
    n = components.base_vocab_size
    table = next(k for k in before["text_encoder"] if k.endswith("token_embedding.weight"))
    for k, v in components.text_encoder.state_dict().items():
        assert torch.equal(v[:n] if k == table else v, before["text_encoder"][k]), k
    for job in jobs:  # the token rows were trained and are installed
        assert not torch.allclose(result.vectors[job.name], init[job.name])
        assert torch.equal(T.token_embeddings(components, job.token), result.vectors[job.name])
    assert not any(p.requires_grad for p in components.unet.parameters())
    assert not components.text_encoder.get_input_embeddings()._forward_hooks


def test_lora_lowers_the_denoising_loss_of_its_class_at_held_out_noise(components, tmp_path: Path,
                                                                        tiny_sd_path: Path) -> None:
    from diffusers import DDPMScheduler

    job = _jobs(("gear",))[0]
    mean, std = _class_latents(components, 2)
    settings = _settings(tiny_sd_path, method="lora", steps=40, lora_lr=5e-3, lora_rank=8)
    sched = DDPMScheduler.from_config(components.scheduler.config)
    g = torch.Generator().manual_seed(123)  # noise and timesteps never drawn in training (another generator)
    latents = (mean.repeat(4, 1, 1, 1) + std.repeat(4, 1, 1, 1) * torch.randn((8, *mean.shape[1:]), generator=g))
    latents = latents * components.vae.config.scaling_factor
    noise = torch.randn(latents.shape, generator=g)
    timesteps = torch.randint(0, 1000, (8,), generator=g)
    ids = inversion.prompt_ids(components, "gear", ("a photo of a {}",)).repeat(8, 1)

    def loss() -> float:
        with torch.no_grad():
            return float(inversion.denoising_loss(components, sched, latents, ids, noise, timesteps))

    before = loss()
    lora.train_joint(components, [job], [(mean, std)], settings, tmp_path)
    after = loss()
    assert after < before * 0.9, (before, after)


def _stock_img2img(tiny_sd_path: Path):
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_sd_path, safety_checker=None,
                                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("method", ["lora", "ti+lora"])
def test_stock_pipeline_with_the_saved_lora_generates_what_dsc_generates(method: str, tmp_path: Path,
                                                                         tiny_sd_path: Path) -> None:
    from dsc.diffusion.generate import Request, denoise, encode_source
    from dsc.testing import load_tiny_sd
    from plugins.dsc_augmenters.dafusion import DaFusionAugmenter, DaFusionOptions

    data = square_store(tmp_path / "data.h5")
    man = I.run_invert(data, tmp_path / "tok", _settings(tiny_sd_path, method=method, lora_lr=1e-2),
                       show_progress=False)
    assert (tmp_path / "tok" / lora.LORA_FILE).is_file() and not (tmp_path / "tok" / "checkpoints").exists()
    # dsc: the DA-Fusion family's prepare() installs the tokens and the LoRA; dsc's batched img2img
    components = load_tiny_sd(tiny_sd_path)
    plugin = DaFusionAugmenter(DaFusionOptions(tokens=tmp_path / "tok"))
    info = plugin.prepare(components, ["gear"])
    assert info["tokens_manifest"]["lora"]["sha256"] == man.lora["sha256"] == json.loads(
        (tmp_path / "tok" / T.MANIFEST).read_text())["lora"]["sha256"]
    prompt = f"a photo of a {plugin.class_phrase('gear')}"
    assert prompt == ("a photo of a gear" if method == "lora" else "a photo of a <gear>")
    cond = plugin.encode(components, [prompt])[0]
    uncond = plugin.encode(components, [""])[0]
    image = np.random.default_rng(0).integers(0, 255, (8, 8, 3)).astype(np.uint8).repeat(8, 0).repeat(8, 1)
    src = encode_source(components.vae, image)
    ours = denoise(components.vae, components.unet, components.scheduler,
                   [Request(src, cond, uncond, 0.75, torch.Generator().manual_seed(5))], steps=6, guidance=7.5)
    # stock: a fresh pipeline, the LoRA by load_lora_weights(TOKENS/), the token by load_textual_inversion
    pipe = _stock_img2img(tiny_sd_path)

    def stock():
        return pipe(prompt, image=torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255, strength=0.75,
                    num_inference_steps=6, guidance_scale=7.5, generator=torch.Generator().manual_seed(5),
                    output_type="pt").images

    without = stock() if method == "lora" else None
    pipe.load_lora_weights(str(tmp_path / "tok"))
    if method == "ti+lora":
        pipe.load_textual_inversion(str(tmp_path / "tok" / man.classes["gear"].file))
    ref = stock()
    torch.testing.assert_close(ours, ref, atol=2e-3, rtol=0)
    if without is not None:  # the LoRA changed the image: the comparison above is not vacuous
        assert (without - ref).abs().max() > 1e-2
    # text-to-image too: dsc's source-free request against the stock StableDiffusionPipeline (same LoRA)
    from diffusers import StableDiffusionPipeline

    from dsc.diffusion.generate import blank_source

    ours = denoise(components.vae, components.unet, components.scheduler,
                   [Request(blank_source(components.vae, components.unet, 64), cond, uncond, 1.0,
                            torch.Generator().manual_seed(9))], steps=6, guidance=7.5)
    txt2img = StableDiffusionPipeline(**pipe.components)
    txt2img.set_progress_bar_config(disable=True)
    ref = txt2img(prompt, height=64, width=64, num_inference_steps=6, guidance_scale=7.5,
                  generator=torch.Generator().manual_seed(9), output_type="pt").images
    torch.testing.assert_close(ours, ref, atol=2e-3, rtol=0)


def die_in_update(monkeypatch: pytest.MonkeyPatch, n: int):
    """Make the LoRA trainer's ``n``-th update raise KeyboardInterrupt (as SIGKILL would, nothing is saved on
    the way out); return the real ``update`` to put back."""
    real, calls = lora.JointTrainer.update, {"n": 0}

    def killed(self):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(lora.JointTrainer, "update", killed)
    return real


def interrupted(tmp_path: Path, settings: InvertSettings, monkeypatch: pytest.MonkeyPatch):
    """(DATA.h5, the manifest of an uninterrupted run into full/) after a run into tok/ died inside step 4,
    with a checkpoint every 2 steps."""
    data = square_store(tmp_path / "data.h5")
    monkeypatch.setattr(lora, "CHECKPOINT_EVERY", 2)
    full = I.run_invert(data, tmp_path / "full", settings, show_progress=False)
    real = die_in_update(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        I.run_invert(data, tmp_path / "tok", settings, show_progress=False)
    monkeypatch.setattr(lora.JointTrainer, "update", real)
    return data, full


def test_resume_after_interruption_equals_uninterrupted(tmp_path: Path, tiny_sd_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tiny_sd_path, method="ti+lora", steps=5, num_vectors=2, lora_lr=1e-2)
    data, full = interrupted(tmp_path, settings, monkeypatch)
    assert (tmp_path / "tok.partial" / "checkpoints" / "lora.json").is_file()
    with pytest.raises(MismatchError, match="lora_rank"):
        I.run_invert(data, tmp_path / "tok", _settings(tiny_sd_path, method="ti+lora", steps=5, num_vectors=2,
                                                       lora_lr=1e-2, lora_rank=2), resume=True)
    resumed = I.run_invert(data, tmp_path / "tok", settings, resume=True, show_progress=False)
    assert resumed.lora["resumed_from"] == 2 and resumed.lora["loss"] == full.lora["loss"]
    assert (tmp_path / "tok" / lora.LORA_FILE).read_bytes() == (tmp_path / "full" / lora.LORA_FILE).read_bytes()
    for name in ("brake caliper", "gear"):
        assert resumed.classes[name].sha256 == full.classes[name].sha256
    # one LoRA is trained on all classes at once: a finished one cannot grow
    with pytest.raises(MismatchError, match="cannot be added"):
        I.run_invert(square_store(tmp_path / "d3.h5", classes=("brake caliper", "gear", "nut")), tmp_path / "tok",
                     settings, resume=True)


def test_lora_file_bytes_do_not_depend_on_metadata_order() -> None:
    import safetensors.torch

    t = {"w": torch.arange(4.0)}
    a = safetensors.torch.save(t, metadata={"format": "pt", "x": "1"})
    header = json.loads(a[8:8 + int.from_bytes(a[:8], "little")])
    header["__metadata__"] = dict(reversed(list(header["__metadata__"].items())))
    text = json.dumps(header).encode()
    b = len(text).to_bytes(8, "little") + text + a[8 + int.from_bytes(a[:8], "little"):]
    assert a != b and lora.canonical_safetensors(a) == lora.canonical_safetensors(b)
    assert torch.equal(safetensors.torch.load(lora.canonical_safetensors(b))["w"], t["w"])


def test_method_options_and_targets_are_checked(components, tiny_sd_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="does not use --num-vectors"):
        lora_options.check_method_options(_settings(tiny_sd_path, method="lora", num_vectors=2))
    with pytest.raises(ConfigError, match="does not use --lora-rank"):
        lora_options.check_method_options(_settings(tiny_sd_path, lora_rank=8))
    lora_options.check_method_options(_settings(tiny_sd_path, method="ti+lora", num_vectors=2, lora_rank=8))
    with pytest.raises(ConfigError, match="no linear layer named to_x"):
        lora_options.check_targets(components.unet, ["to_q", "to_x"])
    lora_options.check_targets(components.unet, ["to_out.0", "proj_in", "ff.net.2"])
    # the resume view holds exactly what the method uses
    assert "lora_rank" not in _settings(tiny_sd_path).resume_view()
    assert "num_vectors" not in _settings(tiny_sd_path, method="lora").resume_view()
    assert {"lora_rank", "num_vectors", "method"} <= set(_settings(tiny_sd_path, method="ti+lora").resume_view())


def test_invert_cli_lora(run_dsc, tmp_path: Path, tiny_sd_path: Path) -> None:
    data = square_store(tmp_path / "data.h5")
    common = ["invert", data, "--model", tiny_sd_path, "--steps", 2, "--resolution", 64, "--batch-size", 2]
    res = run_dsc(*common, "--output", tmp_path / "tok", "--method", "lora", "--lora-rank", 2, "--lora-alpha", 4,
                  "--lora-targets", "to_q,to_v", "--examples-per-class", 1, "--validation-grids", "--json")
    assert res.code == 0, res
    man = json.loads(res.out)
    assert (tmp_path / "tok" / man["classes"]["gear"]["validation_grid"]).is_file()
    assert man["method"] == "lora" and man["version"] == 2 and man["complete"]
    assert man["lora"]["rank"] == 2 and man["lora"]["alpha"] == 4 and man["lora"]["targets"] == ["to_q", "to_v"]
    assert man["settings"]["method"] == "lora" and man["provenance"]["sources"]["lora_rank"] == "command line"
    assert man["classes"]["gear"]["token"] == "gear" and len(man["classes"]["gear"]["examples"]) == 1
    assert set(man["classes"]["gear"]["examples"]) <= set(np.flatnonzero(
        np.array(["train", "train", "val", "test"] * 2) == "train").tolist())
    text = run_dsc(*common, "--output", tmp_path / "tok2", "--method", "lora")
    assert text.code == 0 and "LoRA rank 4" in text.out, text
    for args, msg in [(("--lora-rank", 0), "lora_rank"), (("--method", "lora", "--lora-targets", "to_x"), "to_x"),
                      (("--method", "lora", "--num-vectors", 2), "does not use --num-vectors"),
                      (("--lora-rank", 8), "does not use --lora-rank"), (("--method", "dreambooth"), "method")]:
        bad = run_dsc(*common, "--output", tmp_path / "bad", *args)
        assert bad.code == 1 and msg in bad.err and "Traceback" not in bad.err, (args, bad)
        assert len(bad.err.strip().splitlines()) <= 2, bad.err


def test_augment_with_lora_tokens_records_the_lora(run_dsc, tmp_path: Path) -> None:
    from dsc.store import open_store
    from dsc.testing import FAST_AUGMENT

    data = square_store(tmp_path / "data.h5")
    res = run_dsc("invert", data, "--model", "tiny", "--steps", 2, "--resolution", 64, "--batch-size", 2,
                  "--method", "lora", "--output", tmp_path / "tok", "--json")
    assert res.code == 0, res
    sha = json.loads(res.out)["lora"]["sha256"]
    res = run_dsc("augment", data, "--tokens", tmp_path / "tok", *FAST_AUGMENT, "-o", tmp_path / "aug.h5")
    assert res.code == 0, res
    aug = open_store(tmp_path / "aug.h5", kind="synthetic")
    recorded = aug.attrs["inputs"]["tokens_manifest"]
    assert recorded["method"] == "lora" and recorded["lora"]["sha256"] == sha and recorded["lora"]["rank"] == 4
    assert set(aug.column("prompt").tolist()) == {"a photo of a brake caliper", "a photo of a gear"}
    # a changed LoRA file is refused before anything is generated
    lora_file = tmp_path / "tok" / lora.LORA_FILE
    lora_file.write_bytes(lora_file.read_bytes()[:-4] + b"\0\0\0\0")
    res = run_dsc("augment", data, "--tokens", tmp_path / "tok", *FAST_AUGMENT, "-o", tmp_path / "aug2.h5")
    assert res.code == 1 and "does not match the hash" in res.err
