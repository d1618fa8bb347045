"""Tiny inputs for augment tests: a DATA.h5 with masks (3 classes, train/val) and learned-token folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.threads import one_torch_thread

CLASSES = ["gear", "bolt", "brake_caliper"]
RES = 32
# fast generation settings shared by the tests
FAST = ["--model", "tiny", "--resolution", str(RES), "--steps", "4", "--per-image", "2", "--batch-size", "3"]


def write_data(path: Path, *, masks: bool = True, n_train: int = 2, n_val: int = 1) -> Path:
    from dsc.store import StoreWriter

    rng = np.random.default_rng(0)
    rows = [(c, sp) for c in range(len(CLASSES)) for sp in ["train"] * n_train + ["val"] * n_val]
    w = StoreWriter(path, kind="data")
    w.set_classes(CLASSES)
    w.create_column("images", (RES, RES, 3), np.uint8, chunk_rows=1)
    if masks:
        w.create_column("masks", (RES, RES), np.uint8, chunk_rows=1)
    w.create_column("labels", (), np.int64)
    w.create_column("split", (), str)
    small = rng.integers(0, 255, (len(rows), 4, 4, 3)).astype(np.uint8)
    images = small.repeat(RES // 4, axis=1).repeat(RES // 4, axis=2)
    cols = {"images": images, "labels": np.array([c for c, _ in rows]), "split": [sp for _, sp in rows]}
    if masks:
        m = np.zeros((len(rows), RES, RES), dtype=np.uint8)
        m[:, 12:20, 12:20] = 255
        cols["masks"] = m
    w.append(**cols)
    w.finalize()
    return path


@pytest.fixture(scope="session")
def data_h5(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data") / "data.h5")


@pytest.fixture(scope="session")
def tiny_components(dsc_cache):
    import os

    os.environ["DSC_CACHE_DIR"] = str(dsc_cache)
    from dsc.diffusion.models import load_components

    return load_components("tiny", device="cpu")


def write_tokens(folder: Path, components, classes: list[str], *, dim: int | None = None,
                 fingerprint: str | None = None, num_vectors: int = 2) -> Path:
    """A TOKENS/ folder as `dsc invert` writes it, with random vectors."""
    import torch

    from dsc.diffusion.tokens import ClassToken, TokenManifest, save_token_file, tokens_for_classes

    folder.mkdir(parents=True, exist_ok=True)
    dim = dim or components.embedding_dim
    gen = torch.Generator().manual_seed(0)
    entries = {}
    for name, token in tokens_for_classes(classes).items():
        vectors = torch.randn(num_vectors, dim, generator=gen)
        fname = f"{token}.safetensors"
        digest = save_token_file(folder / fname, token, vectors)
        entries[name] = ClassToken(token=token, file=fname, sha256=digest, num_vectors=num_vectors, dim=dim)
    model = {"model": components.model_id, "text_fingerprint": fingerprint or components.text_fingerprint()}
    TokenManifest(directory=folder, classes=entries, model=model).write()
    return folder


@pytest.fixture(scope="session")
def tokens_dir(tmp_path_factory, tiny_components) -> Path:
    return write_tokens(tmp_path_factory.mktemp("tokens") / "TOKENS", tiny_components, CLASSES)


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    with one_torch_thread():
        yield
