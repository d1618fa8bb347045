from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dsc.diffusion import tokens as T
from dsc.errors import InputError, MismatchError


def _manifest(directory: Path, components, vectors: dict[str, torch.Tensor]) -> T.TokenManifest:
    directory.mkdir(parents=True, exist_ok=True)
    classes = {}
    for name, vec in vectors.items():
        tok = T.token_for_class(name)
        file = tok.strip("<>") + ".safetensors"
        sha = T.save_token_file(directory / file, tok, vec)
        classes[name] = T.ClassToken(token=tok, file=file, sha256=sha, num_vectors=vec.shape[0], dim=vec.shape[1])
    man = T.TokenManifest(directory=directory, classes=classes, model=components.describe())
    man.write()
    return T.load_manifest(directory)


def test_token_names() -> None:
    assert T.token_for_class("brake_caliper") == "<brake_caliper>"
    assert T.token_for_class("Brake Caliper-2") == "<brake_caliper_2>"
    assert T.tokens_for_classes(["a b", "a_b", "c"]) == {"a b": "<a_b>", "a_b": "<a_b_2>", "c": "<c>"}
    assert T.vector_tokens("<t>", 3) == ["<t>", "<t>_1", "<t>_2"]


def test_token_file_loads_in_stock_pipeline_and_changes_prompt_embedding(tmp_path: Path, components) -> None:
    pipe = components.pipeline("StableDiffusionPipeline")
    prompt = "a photo of a <gear>"
    before = pipe.encode_prompt(prompt, "cpu", 1, False)[0]
    vec = torch.randn(3, components.embedding_dim, generator=torch.Generator().manual_seed(0))
    T.save_token_file(tmp_path / "gear.safetensors", "<gear>", vec)
    token, read = T.read_token_file(tmp_path / "gear.safetensors")
    assert token == "<gear>" and torch.equal(read, vec)
    pipe.load_textual_inversion(str(tmp_path / "gear.safetensors"))
    after = pipe.encode_prompt(prompt, "cpu", 1, False)[0]
    assert not torch.allclose(before, after)
    # all K vectors appear in the prompt, and dsc expands prompts exactly like diffusers
    expanded = T.expand_prompt(prompt, pipe.tokenizer)
    assert expanded == pipe.maybe_convert_prompt(prompt, pipe.tokenizer) == "a photo of a <gear> <gear>_1 <gear>_2"
    ids = pipe.tokenizer(expanded).input_ids
    wanted = pipe.tokenizer.convert_tokens_to_ids(["<gear>", "<gear>_1", "<gear>_2"])
    assert [i for i in ids if i in wanted] == wanted
    assert torch.equal(T.token_embeddings(components, "<gear>"), vec)


def test_install_tokens_matches_stock_loading(tmp_path: Path, components, tiny_sd_path: Path) -> None:
    from dsc.diffusion.models import load_components

    vec = torch.randn(2, components.embedding_dim, generator=torch.Generator().manual_seed(1))
    man = _manifest(tmp_path / "tok", components, {"brake caliper": vec})
    assert man.classes["brake caliper"].num_vectors == 2
    got = T.install_tokens(components, man, ["brake caliper"])
    assert got == {"brake caliper": "<brake_caliper>"}
    stock = load_components(str(tiny_sd_path)).pipeline("StableDiffusionPipeline")
    stock.load_textual_inversion(str(man.file("brake caliper")))
    ours = components.pipeline("StableDiffusionPipeline")
    prompt = "a photo of a <brake_caliper>"
    assert torch.equal(ours.encode_prompt(prompt, "cpu", 1, False)[0], stock.encode_prompt(prompt, "cpu", 1, False)[0])
    # installing again overwrites the same rows instead of adding new ones
    n = len(components.tokenizer)
    T.install_tokens(components, man, ["brake caliper"])
    assert len(components.tokenizer) == n


def test_missing_classes_are_listed(tmp_path: Path, components) -> None:
    vec = torch.zeros(1, components.embedding_dim)
    man = _manifest(tmp_path / "tok", components, {"gear": vec})
    with pytest.raises(InputError, match="no token for 2 classes: bolt, nut"):
        T.install_tokens(components, man, ["gear", "bolt", "nut"])
    man.file("gear").unlink()
    with pytest.raises(InputError, match="gear \\(gear.safetensors\\)"):
        T.install_tokens(components, man, ["gear"])


def test_dimension_and_model_mismatch(tmp_path: Path, components) -> None:
    man = _manifest(tmp_path / "tok", components, {"gear": torch.zeros(1, 768)})
    with pytest.raises(MismatchError, match="dimension 768.*dimension 32"):
        T.install_tokens(components, man, ["gear"])
    man = _manifest(tmp_path / "tok2", components, {"gear": torch.zeros(1, 32)})
    raw = json.loads((man.directory / T.MANIFEST).read_text())
    raw["model"]["text_fingerprint"] = "0123456789abcdef"
    raw["model"]["model"] = "CompVis/stable-diffusion-v1-4"
    (man.directory / T.MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(MismatchError, match="learned for model CompVis/stable-diffusion-v1-4"):
        T.install_tokens(components, T.load_manifest(man.directory), ["gear"])


def test_tampered_file_is_refused(tmp_path: Path, components) -> None:
    man = _manifest(tmp_path / "tok", components, {"gear": torch.zeros(1, 32)})
    T.save_token_file(man.file("gear"), "<gear>", torch.ones(1, 32))
    with pytest.raises(MismatchError, match="does not match the hash"):
        T.install_tokens(components, man, ["gear"])


def test_load_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        T.load_manifest(tmp_path / "none")
    (tmp_path / "none.partial").mkdir()
    with pytest.raises(InputError, match="--resume"):
        T.load_manifest(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no tokens.json"):
        T.load_manifest(tmp_path / "empty")
    (tmp_path / "empty" / "tokens.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        T.load_manifest(tmp_path / "empty")
    (tmp_path / "empty" / "tokens.json").write_text("{}")
    with pytest.raises(InputError, match="not a dsc token manifest"):
        T.load_manifest(tmp_path / "empty")
