from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dsc.diffusion import inversion
from dsc.diffusion import invert as I
from dsc.diffusion import tokens as T
from dsc.errors import InputError, MismatchError, OutputExistsError
from dsc.settings import InvertSettings
from dsc.testing import square_store

FAST = dict(steps=3, resolution=64, batch_size=2, num_vectors=2, lr=5e-3)


def _settings(tiny_sd_path: Path, **kw) -> InvertSettings:
    return InvertSettings(model=str(tiny_sd_path), **{**FAST, **kw})


def _latents(components, n: int = 2):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, 64, 64, 3), dtype=np.uint8)
    return inversion.encode_latents(components, inversion.prepare_pixels(images, 64))


def test_only_token_rows_change_and_all_vectors_train(components, tiny_sd_path: Path) -> None:
    unet_before = {k: v.clone() for k, v in components.unet.state_dict().items()}
    text_before = {k: v.clone() for k, v in components.text_encoder.state_dict().items()}
    table = next(k for k in text_before if k.endswith("token_embedding.weight"))
    mean, std = _latents(components)
    job = inversion.ClassJob("brake caliper", 0, "<brake_caliper>", np.arange(2))
    settings = _settings(tiny_sd_path, num_vectors=3, steps=4, lr=0.05)
    init = inversion.initial_vectors(components, "brake caliper", 3)
    vectors, losses = inversion.train_class(components, job, mean, std, settings)
    assert vectors.shape == (3, 32) and len(losses) == 4
    # every one of the K vectors was trained
    assert all(not torch.allclose(vectors[k], init[k]) for k in range(3))
    weight = components.text_encoder.get_input_embeddings().weight
    n = components.base_vocab_size
    assert torch.equal(weight[:n], text_before[table])
    ids = components.tokenizer.convert_tokens_to_ids(T.vector_tokens("<brake_caliper>", 3))
    assert ids == list(range(n, n + 3)) and torch.equal(weight[ids], vectors)
    for k, v in components.text_encoder.state_dict().items():
        if k != table:
            assert torch.equal(v, text_before[k]), k
    for k, v in components.unet.state_dict().items():
        assert torch.equal(v, unet_before[k]), k
    assert not any(p.requires_grad for p in components.text_encoder.parameters())
    # the hook is gone: the model now reads the learned rows from its table, as a stock pipeline would
    assert not components.text_encoder.get_input_embeddings()._forward_hooks


def test_loss_goes_down_on_a_fixed_batch(components) -> None:
    mean, std = _latents(components, 2)
    init = inversion.initial_vectors(components, "gear", 2)
    ids = T.add_token_vectors(components, "<gear>", init)
    trainer = inversion.TokenTrainer(components, ids, init, lr=0.05)
    g = torch.Generator().manual_seed(0)
    input_ids = inversion.prompt_ids(components, "<gear>", ("a photo of a {}",)).repeat(2, 1)
    latents = mean * trainer.scaling
    noise = torch.randn(latents.shape, generator=g)
    timesteps = torch.tensor([200, 600])
    with torch.no_grad():
        before = float(trainer.loss(latents, input_ids, noise, timesteps))
    for _ in range(25):
        trainer.backward(trainer.loss(latents, input_ids, noise, timesteps), 1)
        trainer.update()
    with torch.no_grad():
        after = float(trainer.loss(latents, input_ids, noise, timesteps))
    trainer.close()
    assert after < before - 2e-3, (before, after)
    # the decrease comes from the token alone: everything else was frozen and the batch fixed


def test_prompts_carry_all_vectors(components) -> None:
    T.add_token_vectors(components, "<gear>", torch.zeros(4, 32))
    ids = inversion.prompt_ids(components, "<gear>", ("a photo of a {}", "the {}"))
    want = components.tokenizer.convert_tokens_to_ids(T.vector_tokens("<gear>", 4))
    for row in ids.tolist():
        assert [i for i in row if i in want] == want


def test_initial_vectors(components) -> None:
    emb = components.text_encoder.get_input_embeddings().weight
    one = components.tokenizer("motor", add_special_tokens=False).input_ids
    assert len(one) == 1
    v = inversion.initial_vectors(components, "motor", 3)
    assert torch.equal(v, emb[one * 3])
    with pytest.raises(InputError):
        inversion.initial_vectors(components, "", 2)


def test_examples_are_seeded_and_train_only(tmp_path: Path) -> None:
    from dsc.store import open_store

    store = open_store(square_store(tmp_path / "d.h5", per_class=8))
    a = inversion.select_examples(store, 0, 2, seed=0)
    assert list(a) == list(inversion.select_examples(store, 0, 2, seed=0)) and len(a) == 2
    assert set(store.split[inversion.select_examples(store, 0, None, 0)]) == {"train"}
    assert all(store.split[a] == "train") and all(store.labels[a] == 0)


def test_crop_boxes_are_square_and_inside() -> None:
    m = np.zeros((2, 64, 64), dtype=np.uint8)
    m[0, 10:20, 40:60] = 1
    boxes = inversion.crop_boxes(m)
    top, left, bottom, right = boxes[0]
    assert bottom - top == right - left and top >= 0 and left >= 0 and bottom <= 64 and right <= 64
    assert top <= 10 and bottom >= 20 and left <= 40 and right >= 60
    assert boxes[1] is None


def test_invert_cli_end_to_end(run_dsc, tmp_path: Path, tiny_sd_path: Path, monkeypatch) -> None:
    from diffusers import StableDiffusionPipeline
    from PIL import Image

    import dsc.report.figures.tiles as tiles

    grids = []   # the validation grids' figures: every tile labelled (class, real row or prompt, seed)
    draw = tiles.tile_figure
    monkeypatch.setattr(tiles, "tile_figure", lambda rows, **kw: grids.append(draw(rows, **kw)) or grids[-1])
    data = square_store(tmp_path / "data.h5", masks=True)
    res = run_dsc("invert", data, "--model", tiny_sd_path, "--output", tmp_path / "tok", "--steps", 2,
                  "--resolution", 64, "--batch-size", 2, "--num-vectors", 2, "--examples-per-class", 1,
                  "--crop-to-object", "--validation-grids", "--json")
    assert res.code == 0, res
    man = json.loads(res.out)
    assert man["complete"] and set(man["classes"]) == {"brake caliper", "gear"}
    assert man["data"]["fingerprint"] and man["model"]["text_fingerprint"]
    entry = man["classes"]["brake caliper"]
    assert entry["token"] == "<brake_caliper>" and entry["num_vectors"] == 2 and len(entry["loss"]) == 2
    assert len(entry["examples"]) == 1 and (tmp_path / "tok" / entry["validation_grid"]).is_file()
    assert min(Image.open(tmp_path / "tok" / entry["validation_grid"]).info["dpi"]) >= 150
    titles = [ax.get_title() for fig in grids for ax in fig.axes if ax.get_title()]
    caliper = [t for t in titles if t.startswith("brake caliper\n")]
    assert f"brake caliper\nreal image, row {entry['examples'][0]}" in caliper
    samples = [t for t in caliper if "text-to-image" in t]
    assert len(samples) == man["settings"]["validation_samples"] and all("\nseed " in t for t in samples)
    assert man["settings"]["steps"] == 2 and man["provenance"]["sources"]["steps"] == "command line"
    assert not (tmp_path / "tok.partial").exists()
    # the file loads in a stock pipeline and changes the prompt embedding
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_path)
    before = pipe.encode_prompt("a photo of a <brake_caliper>", "cpu", 1, False)[0]
    pipe.load_textual_inversion(str(tmp_path / "tok" / entry["file"]))
    after = pipe.encode_prompt("a photo of a <brake_caliper>", "cpu", 1, False)[0]
    assert not torch.allclose(before, after)
    # refuses to overwrite; errors are one line
    again = run_dsc("invert", data, "--model", tiny_sd_path, "--output", tmp_path / "tok")
    assert again.code == 1 and "already exists" in again.err and "Traceback" not in again.err


def test_resume_skips_finished_classes_and_matches_uninterrupted(tmp_path: Path, tiny_sd_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    data = square_store(tmp_path / "data.h5", classes=("a", "b", "c"))
    settings = _settings(tiny_sd_path)
    full = I.run_invert(data, tmp_path / "full", settings)

    real_train = inversion.train_class
    calls: list[str] = []

    def crashing(components, job, *args, **kwargs):
        calls.append(job.name)
        if job.name == "b":
            raise KeyboardInterrupt
        return real_train(components, job, *args, **kwargs)

    monkeypatch.setattr(inversion, "train_class", crashing)
    with pytest.raises(KeyboardInterrupt):
        I.run_invert(data, tmp_path / "tok", settings)
    assert (tmp_path / "tok.partial" / "a.safetensors").is_file() and not (tmp_path / "tok").exists()
    with pytest.raises(OutputExistsError, match="--resume"):
        I.run_invert(data, tmp_path / "tok", settings)
    with pytest.raises(MismatchError, match="steps"):
        I.run_invert(data, tmp_path / "tok", _settings(tiny_sd_path, steps=4), resume=True)
    with pytest.raises(MismatchError, match="effective_batch"):
        I.run_invert(data, tmp_path / "tok", _settings(tiny_sd_path, batch_size=1), resume=True)
    calls.clear()
    monkeypatch.setattr(inversion, "train_class", lambda c, job, *a, **k: (calls.append(job.name), real_train(c, job, *a, **k))[1])
    resumed = I.run_invert(data, tmp_path / "tok", settings, resume=True)
    assert calls == ["b", "c"] and resumed.complete and set(resumed.classes) == {"a", "b", "c"}
    for name in ("a", "b", "c"):
        _, x = T.read_token_file(resumed.file(name))
        _, y = T.read_token_file(full.file(name))
        assert torch.allclose(x, y, atol=1e-6), name
    # resuming a finished output retrains nothing and leaves it untouched; asking for a new class adds it
    calls.clear()
    stamp = (tmp_path / "tok" / T.MANIFEST).stat().st_mtime_ns
    again = I.run_invert(data, tmp_path / "tok", settings, resume=True)
    assert calls == [] and (tmp_path / "tok" / T.MANIFEST).stat().st_mtime_ns == stamp and again.already_complete
    # ... but only when it was made the same way: a finished output was once returned whatever --steps said
    with pytest.raises(MismatchError, match="steps: "):
        I.run_invert(data, tmp_path / "tok", _settings(tiny_sd_path, steps=4), resume=True)
    assert (tmp_path / "tok" / T.MANIFEST).stat().st_mtime_ns == stamp
    I.run_invert(data, tmp_path / "ab", settings, classes=["a", "b"])
    calls.clear()
    more = I.run_invert(data, tmp_path / "ab", settings, resume=True)
    assert calls == ["c"] and set(more.classes) == {"a", "b", "c"} and more.complete
    assert not (tmp_path / "ab.partial").exists()


def test_bad_input(run_dsc, tmp_path: Path, tiny_sd_path: Path) -> None:
    data = square_store(tmp_path / "data.h5")
    res = run_dsc("invert", data, "--model", "someone/missing-model", "--output", tmp_path / "t1")
    assert res.code == 1 and "hf download someone/missing-model" in res.err
    assert not (tmp_path / "t1").exists()
    res = run_dsc("invert", data, "--model", tiny_sd_path, "--output", tmp_path / "t2", "--classes", "gear,nut")
    assert res.code == 1 and "unknown class: nut" in res.err
    res = run_dsc("invert", data, "--model", tiny_sd_path, "--output", tmp_path / "t3", "--crop-to-object")
    assert res.code == 1 and "no object masks" in res.err
    res = run_dsc("invert", tmp_path / "nope.h5", "--model", tiny_sd_path, "--output", tmp_path / "t4")
    assert res.code == 1 and "does not exist" in res.err
    res = run_dsc("invert", data, "--model", tiny_sd_path, "--output", tmp_path / "t5", "--num-vectors", 0)
    assert res.code == 1 and "num_vectors" in res.err


def test_out_of_memory_suggests_smaller_batch(tmp_path: Path, tiny_sd_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dsc.errors import ResourceError

    real_train = inversion.train_class

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(inversion, "train_class", oom)
    with pytest.raises(ResourceError, match="--resume and a smaller --batch-size"):
        I.run_invert(square_store(tmp_path / "d.h5"), tmp_path / "tok", _settings(tiny_sd_path))
    assert not (tmp_path / "tok").exists()
    # the same effective batch split differently is accepted on resume
    monkeypatch.setattr(inversion, "train_class", real_train)
    man = I.run_invert(tmp_path / "d.h5", tmp_path / "tok", _settings(tiny_sd_path, batch_size=1,
                                                                        gradient_accumulation=2), resume=True)
    assert man.complete and man.classes["gear"].batch_size == 1 and man.classes["gear"].gradient_accumulation == 2
