"""Tiny inputs for tests and examples: the tiny Stable Diffusion model, learned-token folders, small stores.

One home for what the test suite (and a plugin author's tests) build: every factory writes a real store
through ``StoreWriter`` with seeded random content, small enough to build in well under a second. Nothing
here imports torch or h5py at module level.

- :func:`tiny_sd_path` / :func:`load_tiny_sd`: the tiny diffusion model (built once per cache folder);
- :func:`write_tokens`: a ``TOKENS/`` folder as `dsc invert` writes it, with random vectors;
- :func:`masked_store`: 3 classes of blocky 32x32 images with object masks, train/val (augment tests);
- :func:`square_store`: a coloured square per class, groups and sources (diffusion tests);
- :func:`pattern_store`: 3 classes told apart by colour and stripes, train/val/test (training tests);
- :func:`synthetic_store`: a synthetic store made from a data store's train images (normal or OOD);
- :func:`report_stores`: a DATA.h5 and an AUG.h5 with near copies and in-distribution OOD (report tests);
- :func:`augmented_like`: a synthetic store laid out as `dsc augment` writes it, from a data store;
- :func:`dsc_cmd` / :func:`run_cmd`: run ``python -m dsc`` in a subprocess, under torchrun for several
  processes (2 CPU processes, gloo, one thread each).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: The classes of :func:`masked_store`, and its image size.
MASKED_CLASSES = ["gear", "bolt", "brake_caliper"]
MASKED_RES = 32
#: `dsc augment` options for a fast run on the tiny model (4 steps, 2 images per source, batches of 3).
FAST_AUGMENT = ["--model", "tiny", "--resolution", str(MASKED_RES), "--steps", "4", "--per-image", "2",
                "--batch-size", "3"]
#: The classes of :func:`pattern_store` (and :func:`synthetic_store`).
PATTERN_CLASSES = ["gear", "bolt", "spring"]
#: The classes of :func:`report_stores`.
REPORT_CLASSES = ["gear", "bolt", "nut"]


# --------------------------------------------------------------------------------------- the tiny model
def tiny_sd_path(cache: Path | None = None) -> Path:
    """The tiny diffusion model's folder under ``cache`` (default: dsc's cache), built on first use."""
    from dsc.diffusion.tiny import tiny_model_path

    return tiny_model_path(cache)


def load_tiny_sd(path: Path | None = None, **kwargs: Any) -> Any:
    """The tiny diffusion model, freshly loaded (tests may install tokens into it): by name (``"tiny"``, in
    dsc's cache) or from ``path`` (:func:`tiny_sd_path`); ``kwargs`` go to ``load_components``."""
    from dsc.diffusion.models import load_components

    return load_components("tiny" if path is None else str(path), **kwargs)


def write_tokens(folder: Path, components: Any, classes: list[str], *, dim: int | None = None,
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


# ------------------------------------------------------------------------------------------- stores
def masked_store(path: Path, *, masks: bool = True, n_train: int = 2, n_val: int = 1) -> Path:
    """DATA.h5 of :data:`MASKED_CLASSES`: per class ``n_train`` train and ``n_val`` val blocky images, masks."""
    from dsc.store import StoreWriter

    rng = np.random.default_rng(0)
    rows = [(c, sp) for c in range(len(MASKED_CLASSES)) for sp in ["train"] * n_train + ["val"] * n_val]
    w = StoreWriter(path, kind="data")
    w.set_classes(MASKED_CLASSES)
    w.create_column("images", (MASKED_RES, MASKED_RES, 3), np.uint8, chunk_rows=1)
    if masks:
        w.create_column("masks", (MASKED_RES, MASKED_RES), np.uint8, chunk_rows=1)
    w.create_column("labels", (), np.int64)
    w.create_column("split", (), str)
    small = rng.integers(0, 255, (len(rows), 4, 4, 3)).astype(np.uint8)
    images = small.repeat(MASKED_RES // 4, axis=1).repeat(MASKED_RES // 4, axis=2)
    cols = {"images": images, "labels": np.array([c for c, _ in rows]), "split": [sp for _, sp in rows]}
    if masks:
        m = np.zeros((len(rows), MASKED_RES, MASKED_RES), dtype=np.uint8)
        m[:, 12:20, 12:20] = 255
        cols["masks"] = m
    w.append(**cols)
    w.finalize()
    return path


def square_store(path: Path, classes: tuple[str, ...] = ("brake caliper", "gear"), per_class: int = 4,
                 size: int = 64, splits: tuple[str, ...] = ("train", "train", "val", "test"),
                 masks: bool = False, seed: int = 0) -> Path:
    """A small kind="data" store: per class ``per_class`` images (a coloured square per class, noise)."""
    from dsc.store import StoreWriter

    rng = np.random.default_rng(seed)
    images, labels, split, group, source, mask_rows = [], [], [], [], [], []
    for c in range(len(classes)):
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            lo, hi = size // 4 + i % 3, 3 * size // 4
            img[lo:hi, lo:hi] = np.array([200 * (c % 2), 120, 200 * (1 - c % 2)], dtype=np.uint8)
            images.append(img)
            m = np.zeros((size, size), dtype=np.uint8)
            m[lo:hi, lo:hi] = 255
            mask_rows.append(m)
            labels.append(c)
            split.append(splits[i % len(splits)])
            group.append(f"{classes[c]}-{i}")
            source.append(f"mem://{classes[c]}/{i}.png")
    with StoreWriter(path, kind="data", attrs={"settings": {"test": True}}) as w:
        w.set_classes(list(classes))
        w.create_column("images", (size, size, 3), np.uint8)
        if masks:
            w.create_column("masks", (size, size), np.uint8)
        w.create_column("labels", (), np.int64)
        w.create_column("split", (), str)
        w.create_column("group", (), str)
        w.create_column("source", (), str)
        cols = dict(images=np.stack(images), labels=np.array(labels), split=split, group=group, source=source)
        if masks:
            cols["masks"] = np.stack(mask_rows)
        w.append(**cols)
        w.finalize()
    return path


def _pattern_image(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    base = np.zeros((size, size, 3), dtype=np.float32)
    base[..., label] = 180
    yy, xx = np.mgrid[:size, :size]
    base[..., (label + 1) % 3] += 60 * (((xx // (2 + label)) % 2) == 0)
    base += rng.normal(0, 25, base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def pattern_store(path: Path, per_class: tuple[int, int, int] = (8, 3, 3), size: int = 16, seed: int = 0,
                  holdout: int = 0) -> Path:
    """DATA.h5 of :data:`PATTERN_CLASSES`: ``per_class`` (train, val, test) images per class, ``holdout``
    unlabelled (-1) test images."""
    from dsc.store import StoreWriter

    rng = np.random.default_rng(seed)
    images, labels, split = [], [], []
    for c in range(len(PATTERN_CLASSES)):
        for sp, n in zip(("train", "val", "test"), per_class, strict=True):
            for _ in range(n):
                images.append(_pattern_image(rng, c, size))
                labels.append(c)
                split.append(sp)
    for _ in range(holdout):
        images.append(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
        labels.append(-1)
        split.append("test")
    with StoreWriter(path, kind="data", attrs={"settings": {"test": True}}) as w:
        w.set_classes(PATTERN_CLASSES)
        w.create_column("images", (size, size, 3), np.uint8)
        w.create_column("labels", (), np.int64)
        w.create_column("split", (), str)
        w.append(images=np.stack(images), labels=np.array(labels), split=split)
        w.finalize()
    return path


def synthetic_store(path: Path, data: Path, *, ood: bool, per_image: int = 2, seed: int = 1,
                    evaluation_only: bool = False) -> Path:
    """A synthetic store of :data:`PATTERN_CLASSES` from ``data``'s train images: noisy copies, or noise (OOD)."""
    from dsc.store import Store, StoreWriter

    store = Store(data)
    rng = np.random.default_rng(seed)
    rows = store.indices("train")
    images, labels, is_ood, src_label, src_index, variant = [], [], [], [], [], []
    for r in rows:
        lab = int(store.labels[r])
        for v in range(per_image):
            img = store.images([r])[0].astype(np.int16) + rng.integers(-20, 20, store.image_shape)
            if ood:
                img = rng.integers(0, 255, store.image_shape)
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(-1 if ood else lab)
            is_ood.append(ood)
            src_label.append(lab)
            src_index.append(int(r))
            variant.append(v)
    attrs = {"inputs": {"data_fingerprint": store.fingerprint}, "evaluation_only": evaluation_only,
             "settings": {"mode": "ood" if ood else "normal"}}
    with StoreWriter(path, kind="synthetic", attrs=attrs) as w:
        w.set_classes(PATTERN_CLASSES)
        w.create_column("images", store.image_shape, np.uint8)
        for name in ("labels", "source_label", "source_index", "variant"):
            w.create_column(name, (), np.int64)
        w.create_column("is_ood", (), bool)
        w.append(images=np.stack(images), labels=np.array(labels), is_ood=np.array(is_ood),
                 source_label=np.array(src_label), source_index=np.array(src_index), variant=np.array(variant))
        w.finalize()
    return path


def _colour_images(rng: np.random.Generator, n: int, colour: int, size: int = 32) -> np.ndarray:
    """Noisy images dominated by one colour channel (classes are easy to tell apart)."""
    x = rng.integers(0, 80, size=(n, size, size, 3)).astype(np.int64)
    x[..., colour] += 150
    return np.clip(x, 0, 255).astype(np.uint8)


def report_stores(root: Path, *, near_copies: int = 2, ood_in_dist: int = 3) -> tuple[Path, Path]:
    """DATA.h5 (3 classes, 12 train + 4 val + 4 test each) and AUG.h5 from it: 6 normal images per class
    (``near_copies`` of class 0 are exact copies of real train images) and 4 OOD images per class (grey
    noise, except ``ood_in_dist`` of class 1 that look like class 1)."""
    from dsc.store import StoreWriter

    rng = np.random.default_rng(0)
    data_path, aug_path = root / "data.h5", root / "aug.h5"
    images, labels, split = [], [], []
    for c in range(3):
        for s, k in (("train", 12), ("val", 4), ("test", 4)):
            images.append(_colour_images(rng, k, c))
            labels += [c] * k
            split += [s] * k
    images = np.concatenate(images)
    with StoreWriter(data_path, kind="data") as w:
        w.set_classes(REPORT_CLASSES)
        w.create_column("images", (32, 32, 3), np.uint8)
        w.create_column("labels", (), np.int64)
        w.create_column("split", (), str)
        w.append(images=images, labels=np.array(labels), split=np.array(split, dtype=object))
        w.finalize()
    from dsc.store import open_store

    fp = open_store(data_path).fingerprint
    train_rows = [i for i, s in enumerate(split) if s == "train"]
    syn, lab, ood, src, idx = [], [], [], [], []
    for c in range(3):
        rows = [i for i in train_rows if labels[i] == c]
        normal = _colour_images(rng, 6, c)
        if c == 0:
            normal[:near_copies] = images[rows[:near_copies]]
        noise = rng.integers(60, 140, size=(4, 32, 32, 3)).astype(np.uint8)
        if c == 1:
            noise[:ood_in_dist] = _colour_images(rng, ood_in_dist, 1)
        for im_set, is_ood in ((normal, False), (noise, True)):
            syn.append(im_set)
            lab += [-1 if is_ood else c] * len(im_set)
            ood += [is_ood] * len(im_set)
            src += [c] * len(im_set)
            idx += rows[:len(im_set)]
    with StoreWriter(aug_path, kind="synthetic", attrs={"inputs": {"data_fingerprint": fp}}) as w:
        w.set_classes(REPORT_CLASSES)
        w.create_column("images", (32, 32, 3), np.uint8)
        for col, dt in (("labels", np.int64), ("is_ood", bool), ("source_label", np.int64),
                        ("source_index", np.int64)):
            w.create_column(col, (), dt)
        w.append(images=np.concatenate(syn), labels=np.array(lab), is_ood=np.array(ood),
                 source_label=np.array(src), source_index=np.array(idx))
        w.finalize()
    return data_path, aug_path


def augmented_like(data_path: Path, out: Path, *, mode: str = "normal", per_image: int = 1,
                   seed: int = 0, examples_per_class: int | None = None) -> Path:
    """A synthetic store made from DATA.h5's train images the way `dsc augment` lays it out: normal images
    are the source images plus noise; OOD images are pixel-shuffled sources (is_ood, label -1). With
    ``examples_per_class``: from the few-shot draw of seed ``seed`` only, as `augment --examples-per-class`."""
    from dsc.few_shot import draw
    from dsc.store import StoreWriter, open_store

    rng = np.random.default_rng(seed)
    data = open_store(data_path, kind="data")
    rows = data.indices("train")
    rows = rows[data.labels[rows] >= 0]
    if examples_per_class is not None:
        rows = draw(data.labels, data.split, list(range(len(data.classes))), examples_per_class, seed)
    src = np.repeat(rows, per_image)
    images = data.images(src).astype(np.int16)
    if mode == "normal":
        images = np.clip(images + rng.integers(-20, 21, images.shape), 0, 255)
    else:
        flat = images.reshape(len(images), -1, 3)
        images = flat[:, rng.permutation(flat.shape[1])].reshape(images.shape)
    ood = mode != "normal"
    attrs = {"inputs": {"data_fingerprint": data.fingerprint}, "settings": {"mode": mode}}
    with StoreWriter(out, kind="synthetic", force=True, attrs=attrs) as w:
        w.set_classes(list(data.classes))
        w.create_column("images", data.image_shape, np.uint8)
        for col, dt in (("labels", np.int64), ("is_ood", bool), ("source_label", np.int64),
                        ("source_index", np.int64), ("variant", np.int64)):
            w.create_column(col, (), dt)
        w.append(images=images.astype(np.uint8), labels=np.full(len(src), -1) if ood else data.labels[src],
                 is_ood=np.full(len(src), ood), source_label=data.labels[src], source_index=src,
                 variant=np.tile(np.arange(per_image), len(rows)))
        w.finalize()
    return out


# ------------------------------------------------------------------------------------- subprocesses
def free_port() -> int:
    """A TCP port free on this machine now (for torchrun's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """This process's environment without launcher variables, one thread per process."""
    drop = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT",
            "TORCHELASTIC", "ACCELERATE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["OMP_NUM_THREADS"] = "1"
    return env


def dsc_cmd(*args: str, nproc: int = 1) -> list[str]:
    """`python -m dsc ARGS`, under torchrun with ``nproc`` processes when ``nproc > 1``."""
    if nproc == 1:
        return [sys.executable, "-m", "dsc", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-port",
            str(free_port()), "-m", "dsc", *args]


def run_cmd(cmd: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``cmd`` in :func:`clean_env`; an ``AssertionError`` with its output tails when it fails."""
    proc = subprocess.run(cmd, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc


def kill_augment_after_first_batch(cmd: list[str], out: Path, cwd: Path, cache: Path) -> bool:
    """Start ``cmd`` (a `dsc augment` writing ``out``) and SIGKILL it once its first batch is on disk; False
    when it finished before it could be killed (the caller skips). Asserts that no store was left behind."""
    import signal
    import time

    shards = out.with_name(out.name + ".shards")
    env = {**os.environ, "DSC_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if any(shards.glob("rows-*.npz")):  # killed at once after the first batch: mid-run
            break
        time.sleep(0.01)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    return True
