"""Training refuses OOD negatives that are copies of its positives (same pixels, or the same generation recipe),
names both stores and the count, and records the (zero) overlap in run.json."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest

from dsc.data.stores import open_inputs
from dsc.errors import InputError
from dsc.store import Store, StoreWriter, shared_images
from dsc.testing import PATTERN_CLASSES, pattern_store


def write_synthetic(path: Path, data: Path, *, ood: bool, seeds: list[int], strengths: list[float],
                    images: np.ndarray | None = None, schema: int | None = None) -> Path:
    """A synthetic store with full per-image provenance, as `dsc augment` writes it (one image per seed)."""
    store = Store(data)
    rows = store.indices("train")[: len(seeds)]
    n = len(seeds)
    if images is None:
        images = np.random.default_rng(abs(hash((ood, tuple(seeds)))) % 2**32).integers(
            0, 255, (n, *store.image_shape), dtype=np.uint8)
    labels = store.labels[rows]
    attrs = {"inputs": {"data_fingerprint": store.fingerprint, "tokens_manifest": None}, "model_id": "tiny",
             "model_revision": "", "strategy": "real-guidance",
             "settings": {"mode": "ood" if ood else "normal", "resolution": 16, "mask": "none", "mask_dilation": 16}}
    with StoreWriter(path, kind="synthetic", attrs=attrs) as w:
        w.set_classes(PATTERN_CLASSES)
        w.create_column("images", store.image_shape, np.uint8)
        for name in ("labels", "source_label", "source_index", "seed", "steps"):
            w.create_column(name, (), np.int64)
        for name in ("strength", "guidance"):
            w.create_column(name, (), np.float32)
        for name in ("prompt", "scheduler"):
            w.create_column(name, (), str)
        w.create_column("is_ood", (), bool)
        w.append(images=images, labels=np.full(n, -1) if ood else labels, source_label=labels,
                 source_index=rows, seed=np.array(seeds), steps=np.full(n, 10), strength=np.array(strengths),
                 guidance=np.full(n, 7.5), prompt=[f"a photo of a {PATTERN_CLASSES[c]}" for c in labels],
                 scheduler=["default:PNDMScheduler"] * n, is_ood=np.full(n, ood))
        w.finalize()
    if schema is not None:
        with h5py.File(path, "r+") as h5:
            h5.attrs["schema_version"] = schema
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return pattern_store(tmp_path / "data.h5", per_class=(4, 2, 2))


def test_negatives_that_copy_positives_are_refused_with_both_names_and_the_count(data, tmp_path):
    normal = write_synthetic(tmp_path / "normal.h5", data, ood=False, seeds=list(range(6)), strengths=[0.5] * 6)
    copies = Store(normal).images(slice(None)).copy()
    copies[3:] = 255 - copies[3:]  # three copies, three new images
    ood = write_synthetic(tmp_path / "ood.h5", data, ood=True, seeds=list(range(100, 106)),
                          strengths=[0.75] * 6, images=copies)
    with pytest.raises(InputError) as exc:
        open_inputs(data, [normal], [ood])
    msg = str(exc.value.message)
    assert "ood.h5 (--negatives)" in msg and "normal.h5 (--synthetic)" in msg and "share 3 of 6" in msg
    assert "\n" not in str(exc.value)
    overlap = shared_images(Store(normal), Store(ood))
    assert (overlap.shared, overlap.same_pixels, overlap.same_recipe) == (3, 3, 0)


def test_the_same_recipe_counts_as_the_same_image(data, tmp_path):
    """A GPU may round a pixel differently: the same source, seed, strength and prompt is the same image."""
    normal = write_synthetic(tmp_path / "normal.h5", data, ood=False, seeds=[1, 2, 3, 4], strengths=[0.75] * 4)
    nudged = Store(normal).images(slice(None)).copy()
    nudged[:, 0, 0, 0] ^= 1  # one grey level in one pixel: other digests
    ood = write_synthetic(tmp_path / "ood.h5", data, ood=True, seeds=[1, 2, 30, 40], strengths=[0.75] * 4,
                          images=nudged)
    overlap = shared_images(Store(normal), Store(ood))
    assert (overlap.same_pixels, overlap.same_recipe, overlap.shared) == (0, 2, 2)
    assert overlap.same_conditions == 2  # the other two: same source, prompt and strength, other noise
    assert not overlap.old_seeds
    with pytest.raises(InputError, match="share 2 of 4"):
        open_inputs(data, [normal], [ood])


def test_same_conditions_are_warned_about_and_recorded_not_refused(data, tmp_path, caplog):
    normal = write_synthetic(tmp_path / "normal.h5", data, ood=False, seeds=[1, 2, 3, 4],
                             strengths=[0.25, 0.5, 0.75, 1.0])
    ood = write_synthetic(tmp_path / "ood.h5", data, ood=True, seeds=[5, 6, 7, 8], strengths=[0.75] * 4)
    with caplog.at_level(logging.WARNING):
        inputs = open_inputs(data, [normal], [ood])
    rec = inputs.record()["overlap"]
    assert rec["shared_images"] == 0 and rec["same_conditions"] == 1
    assert rec["pairs"][0]["negatives"].endswith("ood.h5") and rec["pairs"][0]["n_negatives"] == 4
    assert "1 of 4 OOD images" in caplog.text and "positives' distribution" in caplog.text
    json.dumps(inputs.record())  # run.json material


def test_a_clean_pair_records_zero_and_single_inputs_record_nothing(data, tmp_path):
    normal = write_synthetic(tmp_path / "normal.h5", data, ood=False, seeds=[1, 2], strengths=[0.5] * 2)
    ood = write_synthetic(tmp_path / "ood.h5", data, ood=True, seeds=[3, 4], strengths=[0.75] * 2)
    rec = open_inputs(data, [normal], [ood]).record()
    assert rec["overlap"]["shared_images"] == 0 and rec["overlap"]["same_conditions"] == 0
    assert "overlap" not in open_inputs(data, [normal]).record()


def test_a_store_from_before_schema_2_is_told_to_be_regenerated(data, tmp_path):
    normal = write_synthetic(tmp_path / "normal.h5", data, ood=False, seeds=[1, 2], strengths=[0.75] * 2,
                             schema=1)
    ood = write_synthetic(tmp_path / "ood.h5", data, ood=True, seeds=[1, 2], strengths=[0.75] * 2,
                          images=Store(normal).images(slice(None)), schema=1)
    with pytest.raises(InputError, match="share 2 of 2") as exc:
        open_inputs(data, [normal], [ood])
    assert "regenerate the OOD store" in exc.value.hint and "schema 2" in exc.value.hint


@pytest.mark.parametrize("command", ["baseline", "pretrain"])
def test_training_commands_refuse_in_one_line(data, tmp_path, run_dsc, command):
    normal = write_synthetic(tmp_path / "normal.h5", data, ood=False, seeds=[1, 2], strengths=[0.5] * 2)
    ood = write_synthetic(tmp_path / "ood.h5", data, ood=True, seeds=[3, 4], strengths=[0.75] * 2,
                          images=Store(normal).images(slice(None)))
    args = ["--ood-loss", "outlier-exposure"] if command == "baseline" else []
    res = run_dsc(command, data, "--synthetic", normal, "--negatives", ood, *args, "--backbone", "timm:test_resnet",
                  "--image-size", "16", "--epochs", "1", "-o", tmp_path / "run")
    assert res.code == 1, res
    assert "Traceback" not in res.err and res.err.count("Error:") == 1
    assert "share 2 of 2 OOD images" in res.err and "ood.h5" in res.err and "normal.h5" in res.err
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_run_json_records_the_checked_overlap(data, tmp_path):
    from dsc.settings import BaselineSettings
    from dsc.train.baseline import baseline

    normal = write_synthetic(tmp_path / "normal.h5", data, ood=False, seeds=[1, 2, 3], strengths=[0.5] * 3)
    ood = write_synthetic(tmp_path / "ood.h5", data, ood=True, seeds=[4, 5, 6], strengths=[0.75] * 3)
    settings = BaselineSettings(backbone="timm:test_resnet", image_size=16, batch_size=8, epochs=1,
                                corruptions=False, ood_loss="outlier-exposure")
    baseline(data, tmp_path / "run", settings, synthetic=[normal], negatives=[ood])
    rec = json.loads((tmp_path / "run" / "run.json").read_text())["inputs"]["overlap"]
    assert rec["shared_images"] == 0 and rec["pairs"][0]["negatives"] == str(ood.resolve())
    assert rec["pairs"][0]["positives"] == str(normal.resolve()) and rec["pairs"][0]["n_negatives"] == 3
