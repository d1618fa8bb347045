"""Few-shot runs: `--examples-per-class K` trains (and probes) on dsc's one seeded draw, the rows invert and
augment draw with the same K and seed, and leaves out synthetic rows made from other images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dsc.augment.plan import select_sources
from dsc.diffusion import inversion
from dsc.errors import InputError
from dsc.evaluate.embeddings import FeatureSet
from dsc.evaluate.probe import _few_shot
from dsc.settings import AugmentSettings, BaselineSettings
from dsc.store import open_store
from dsc.testing import augmented_like, pattern_store
from dsc.train.common import few_shot_rows, load_data
from dsc.train.run_dir import settings_hash

TRAIN = ["--backbone", "timm:test_resnet", "--image-size", "16", "--batch-size", "8", "--epochs", "1"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return pattern_store(tmp_path / "data.h5", per_class=(6, 2, 2))


def test_training_draws_the_rows_invert_and_augment_draw(data: Path) -> None:
    store = open_store(data)
    classes = list(range(len(store.classes)))
    rows = few_shot_rows(store, BaselineSettings(examples_per_class=2, seed=5))
    inverted = np.sort(np.concatenate([inversion.select_examples(store, c, 2, 5) for c in classes]))
    augmented = select_sources(store.labels, store.split, AugmentSettings(examples_per_class=2, seed=5), classes)
    assert rows.tolist() == inverted.tolist() == augmented.tolist()
    assert len(rows) == 2 * len(classes) and set(store.split[rows]) == {"train"}
    assert few_shot_rows(store, BaselineSettings()) is None
    other = few_shot_rows(store, BaselineSettings(examples_per_class=2, seed=5, few_shot_seed=6))
    assert other.tolist() != rows.tolist()  # the draw follows few_shot_seed when given


def test_invert_and_augment_draw_with_few_shot_seed_apart_from_seed(data: Path) -> None:
    """A study that fixes the generator's seed but varies the draw (or the other way round) needs the draw's
    seed on its own, as training has it."""
    from dsc.diffusion.invert import select_class_rows
    from dsc.settings import InvertSettings

    store = open_store(data)
    classes = list(range(len(store.classes)))
    train = few_shot_rows(store, BaselineSettings(examples_per_class=2, seed=0, few_shot_seed=6))
    augmented = select_sources(store.labels, store.split,
                               AugmentSettings(examples_per_class=2, seed=0, few_shot_seed=6), classes)
    inverted = np.sort(np.concatenate(select_class_rows(store, InvertSettings(examples_per_class=2, seed=0,
                                                                              few_shot_seed=6))))
    assert train.tolist() == augmented.tolist() == inverted.tolist()
    assert train.tolist() != few_shot_rows(store, BaselineSettings(examples_per_class=2, seed=0)).tolist()


def test_synthetic_rows_from_other_images_are_left_out(data: Path, tmp_path: Path) -> None:
    from dsc.data.stores import open_inputs

    aug = augmented_like(data, tmp_path / "aug.h5", per_image=2)
    settings = BaselineSettings(examples_per_class=2, seed=1, image_size=16)
    loaded = load_data(open_inputs(data, [aug], []), settings)
    drawn = few_shot_rows(open_store(data), settings)
    assert loaded.counts["train_real"] == len(drawn)
    assert loaded.counts["synthetic"] == 2 * len(drawn)  # the two variants of each drawn image, no others
    assert set(loaded.pool.source_index.tolist()) == set(drawn.tolist())


def test_a_synthetic_store_from_other_images_is_refused(data: Path, tmp_path: Path) -> None:
    from dsc.data.stores import load_synthetic

    aug = augmented_like(data, tmp_path / "aug.h5")
    with pytest.raises(InputError, match="few-shot draw") as err:
        load_synthetic(open_store(aug), 16, ood=False, n_classes=3, sources=np.array([10_000]))
    assert "--examples-per-class" in err.value.hint


def test_the_probe_of_a_few_shot_run_fits_on_the_same_rows(data: Path, tmp_path: Path) -> None:
    store = open_store(data)
    train = np.flatnonzero(store.split == "train")
    fs = FeatureSet("train", torch.arange(len(train), dtype=torch.float32)[:, None], store.labels[train], train)
    info = {"settings": BaselineSettings(examples_per_class=2, seed=3).model_dump(mode="json")}
    (kept,) = _few_shot([fs], [store], store, info)
    assert kept.rows.tolist() == few_shot_rows(store, BaselineSettings(examples_per_class=2, seed=3)).tolist()
    assert kept.features[:, 0].long().tolist() == [int(np.flatnonzero(train == r)[0]) for r in kept.rows]
    (whole,) = _few_shot([fs], [store], store, {"settings": BaselineSettings().model_dump(mode="json")})
    assert len(whole.rows) == len(train)


def test_runs_made_before_the_option_keep_their_hash() -> None:
    old = BaselineSettings().model_dump(mode="json")
    for key in ("examples_per_class", "few_shot_seed"):
        old.pop(key)
    assert settings_hash(old) == settings_hash(BaselineSettings().model_dump(mode="json"))
    assert settings_hash(BaselineSettings(examples_per_class=2).model_dump(mode="json")) != settings_hash(old)


def test_baseline_cli_few_shot(run_dsc, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = run_dsc("baseline", data, *TRAIN, "--examples-per-class", "2", "--seed", "4", "--no-corruptions",
                  "-o", out)
    assert res.code == 0, res
    info = json.loads((out / "run.json").read_text())
    assert info["settings"]["examples_per_class"] == 2 and info["data_counts"]["train_real"] == 2 * 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["few_shot"] == {"examples_per_class": 2, "seed": 4}
    res = run_dsc("baseline", data, *TRAIN, "--examples-per-class", "3", "--seed", "4", "--no-corruptions",
                  "-o", out, "--resume")
    assert res.code != 0 and "examples_per_class: 2 -> 3" in res.err, res


def test_draws_are_nested(data: Path) -> None:
    """With one seed the images of a smaller draw are among a larger one's, so one store made from a K=4
    draw serves the K=1 and K=2 cells of a sweep (independent draws of each K did not)."""
    store = open_store(data)
    for seed in range(5):
        drawn = [set(few_shot_rows(store, BaselineSettings(examples_per_class=k, seed=seed)).tolist())
                 for k in (1, 2, 4)]
        assert drawn[0] < drawn[1] < drawn[2]


def test_a_store_from_a_larger_draw_covers_the_smaller_cells_of_its_seed(data: Path, tmp_path: Path) -> None:
    """What a few-shot study on given stores relies on (docs/commands/study.md#few-shot-sweeps): a store made
    from a K=4 draw (seed 0) holds a variant of every image the K=1 and K=2 runs of the seed-0 draw train on."""
    from dsc.data.stores import open_inputs

    aug = augmented_like(data, tmp_path / "aug.h5", examples_per_class=4, seed=0)
    for k in (1, 2, 4):
        settings = BaselineSettings(examples_per_class=k, seed=7, few_shot_seed=0, image_size=16)
        loaded = load_data(open_inputs(data, [aug], []), settings)
        assert loaded.counts["synthetic"] == loaded.counts["train_real"] == 3 * k
