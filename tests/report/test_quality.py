from __future__ import annotations

import json

import numpy as np
import pytest

from dsc.report.quality import frechet_distance, kid, mean_pairwise_distance, nearest_distances


def test_frechet_distance_matches_matrix_root_formula():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    for m, n, d in ((8, 11, 40), (300, 250, 6)):          # fewer and more images than dimensions
        x, y = rng.normal(size=(m, d)), rng.normal(0.5, 1.5, size=(n, d))
        sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
        ref = ((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(sx + sy - 2 * linalg.sqrtm(sx @ sy).real)
        assert frechet_distance(x, y) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(x[:1], y) is None


def test_kid_is_unbiased_and_grows_with_shift():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
    assert abs(kid(x, y)) < 0.05
    assert kid(x, y + 1.0) > 10 * abs(kid(x, y))
    assert kid(x[:1], y) is None


def test_diversity_and_nearest():
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert mean_pairwise_distance(x) == pytest.approx(5.0)
    assert mean_pairwise_distance(x[:1]) is None
    assert nearest_distances(np.array([[0.0, 1.0]]), x)[0] == pytest.approx(1.0)
    assert list(nearest_distances(x, x, exclude_self=True)) == [5.0, 5.0]


def test_quality_report_flags_copies_and_fake_ood(run_dsc, stores):
    data, aug = stores
    res = run_dsc("report", "--synthetic", aug, "--data", data, "--json")
    assert res.code == 0, res
    q = json.loads(res.out)["quality"]
    assert q["classifier_val_top1"] == 1.0
    store = q["stores"][0]
    assert store["n"] == 30 and store["n_ood"] == 12
    gear, bolt = store["classes"]["gear"], store["classes"]["bolt"]
    assert gear["normal"]["n"] == 6 and gear["normal"]["near_copies"] == 2     # two exact copies
    assert bolt["normal"]["near_copies"] == 0
    assert all(c["normal"]["acceptance"] == 1.0 for c in store["classes"].values())
    assert bolt["ood"]["still_source"] == pytest.approx(0.75)                    # 3 of 4 look like bolts
    assert gear["ood"]["still_source"] == 0.0
    assert gear["ood"]["fd"] > 10 * gear["normal"]["fd"]
    table = run_dsc("report", "--synthetic", aug, "--data", data, "--features", "pixels")
    assert table.code == 0 and "near-copies" in table.out and "pixel statistics" in table.out


def test_quality_needs_data(run_dsc, stores):
    res = run_dsc("report", "--synthetic", stores[1])
    assert res.code == 1 and "--data" in res.err


def test_quality_refuses_store_from_other_data(run_dsc, stores, tmp_path):
    from .conftest import write_stores

    other = tmp_path / "other"
    other.mkdir()
    data2, _ = write_stores(other, near_copies=0)
    import h5py

    with h5py.File(data2, "a") as h5:
        h5.attrs["fingerprint"] = "0123456789abcdef"
    res = run_dsc("report", "--synthetic", stores[1], "--data", data2)
    assert res.code == 1 and "fingerprint" in res.err
