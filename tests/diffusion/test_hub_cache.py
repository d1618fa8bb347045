"""A Stable Diffusion hub id comes from the local Hugging Face cache when it is there (no network), and a
missing one fails at once offline with the cache folder and `hf download` (issue 12)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from dsc.diffusion.models import load_components
from dsc.errors import ModelError

REPO = "someone/tiny-sd"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any download or hub request fails the test."""
    import diffusers
    import huggingface_hub
    import huggingface_hub.file_download

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access: {args} {kwargs}")

    for module in (huggingface_hub, huggingface_hub.file_download):
        for name in ("hf_hub_download", "snapshot_download", "model_info"):
            monkeypatch.setattr(module, name, refuse, raising=False)
    monkeypatch.setattr(diffusers.DiffusionPipeline, "download", classmethod(refuse))


def _cache(hub: Path, tiny_sd_path: Path) -> Path:
    """The tiny model as `hf download` leaves a repository: refs/main -> snapshots/<sha>/..."""
    repo = hub / ("models--" + REPO.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    shutil.copytree(tiny_sd_path, repo / "snapshots" / "abc123")
    return repo


@pytest.mark.parametrize("offline", ["1", "0"])
def test_a_cached_hub_model_loads_without_the_network(hub, tiny_sd_path, no_network, monkeypatch, offline) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    _cache(hub, tiny_sd_path)
    components = load_components(REPO, device="cpu")
    assert components.source == "hub" and components.model_id == REPO and components.revision == "abc123"


@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "--local-files-only"])
def test_not_cached_offline_fails_at_once_naming_the_cache_folder(hub, no_network, monkeypatch, how) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if how == "HF_HUB_OFFLINE" else "0")
    start = time.perf_counter()
    with pytest.raises(ModelError) as info:
        load_components(REPO, device="cpu", local_files_only=how != "HF_HUB_OFFLINE")
    assert time.perf_counter() - start < 5
    text = str(info.value)
    assert "\n" not in text and "not in the local Hugging Face cache" in text
    assert str(hub / "models--someone--tiny-sd") in text
    assert f"hf download {REPO}" in info.value.hint and ("HF_HUB_OFFLINE=1" if how == "HF_HUB_OFFLINE"
                                                         else "--allow-download") in info.value.hint


def test_a_failed_download_is_one_line_with_the_cache_folder(hub, monkeypatch) -> None:
    import diffusers

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")

    def no_connection(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them "
                      "in the cached files.\nCheck your internet connection or see how to run the library in "
                      "offline mode at 'https://huggingface.co/docs/diffusers/installation#offline-mode'.")

    monkeypatch.setattr(diffusers.DiffusionPipeline, "download", classmethod(no_connection))
    with pytest.raises(ModelError) as info:
        load_components(REPO, device="cpu")
    text = str(info.value)
    assert "\n" not in text and str(hub / "models--someone--tiny-sd") in text and "downloading it failed" in text
    assert "local_files_only" not in text and f"hf download {REPO}" in info.value.hint


def test_the_cli_says_it_in_one_line(run_dsc, hub, no_network, tmp_path) -> None:
    from dsc.testing import square_store

    data = square_store(tmp_path / "data.h5")
    res = run_dsc("invert", data, "--model", REPO, "-o", tmp_path / "TOKENS")
    assert res.code == 1 and len(res.err.strip().splitlines()) == 1, res
    assert "not in the local Hugging Face cache" in res.err and f"hf download {REPO}" in res.err
    assert not (tmp_path / "TOKENS").exists()
