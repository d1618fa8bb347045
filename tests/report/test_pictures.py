from __future__ import annotations

import numpy as np
import pytest


def _png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    return Image.open(path).size


def test_samples_grid_and_confusion(run_dsc, study, stores, tmp_path):
    data, aug = stores
    grid, cm = tmp_path / "grid.png", tmp_path / "cm.png"
    res = run_dsc("report", study, "--samples", grid, "--data", data, "--synthetic", aug, "--confusion", cm,
                  "--no-curves", "--no-quality")
    assert res.code == 0, res
    w, h = _png(grid)
    assert w > h                      # three column groups side by side, three class rows
    _png(cm)
    assert f"wrote {grid}" in res.out and "Synthetic-data quality" not in res.out
    res = run_dsc("report", study, "--confusion", cm)
    assert res.code == 1 and "already exists" in res.err
    res = run_dsc("report", "--samples", grid, "--force")
    assert res.code == 1 and "--data" in res.err


def test_embedding_map(run_dsc, study, tmp_path):
    from dsc.store import StoreWriter

    run = study / "ce-none-s0"
    rng = np.random.default_rng(0)
    n = 40
    labels = np.r_[rng.integers(0, 3, 30), np.full(10, -1)]
    split = np.array(["test"] * 20 + ["train"] * 10 + ["holdout"] * 10, dtype=object)
    with StoreWriter(run / "embeddings.h5", kind="embeddings") as w:
        w.set_classes(["gear", "bolt", "nut"])
        w.create_column("features", (16,), np.float32)
        w.create_column("labels", (), np.int64)
        w.create_column("split", (), str)
        w.append(features=rng.normal(size=(n, 16)).astype(np.float32), labels=labels, split=split,
                 digest=np.array([i.to_bytes(16, "little") for i in range(n)], dtype="S16"))
        w.finalize()
    out = tmp_path / "map.png"
    res = run_dsc("report", run, "--embedding-map", out, "--no-curves")
    assert res.code == 0, res
    _png(out)
    res = run_dsc("report", study / "ce-none-s1", "--embedding-map", tmp_path / "other.png")
    assert res.code == 1 and "embeddings.h5" in res.err


def test_pca_projection_is_the_top_two_components():
    from dsc.report.pictures import pca_2d

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * np.array([10.0, 3.0, 0.1, 0.1, 0.1])
    xy = pca_2d(x)
    assert xy.shape == (200, 2)
    assert np.var(xy[:, 0]) == pytest.approx(np.var(x[:, 0]), rel=0.05)
    assert np.var(xy[:, 1]) == pytest.approx(np.var(x[:, 1]), rel=0.05)
