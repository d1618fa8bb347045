"""`dsc augment --strategy diff-mix` (Diff-Mix): a class-i image edited toward class j's prompt, soft labels stored
exactly as ``(1 - s**gamma) * y_i + s**gamma * y_j``, partner classes uniform or by val confusion."""

from __future__ import annotations

import numpy as np
import pytest

from dsc.augment import AugmentJob, image_seed, plan_images, run_augment
from dsc.settings import AugmentSettings
from dsc.store import SCHEMA_VERSION, Store
from dsc.testing import FAST_AUGMENT, MASKED_CLASSES, MASKED_RES

MIX = [*FAST_AUGMENT, "--strategy", "diff-mix"]


def _settings(**kw) -> AugmentSettings:
    base = dict(model="tiny", strategy="diff-mix", resolution=MASKED_RES, steps=4, per_image=2, batch_size=3)
    return AugmentSettings(**{**base, **kw})


def test_soft_labels_are_stored_exactly_as_the_formula(run_dsc, data_h5, tmp_path):
    res = run_dsc("augment", data_h5, *MIX, "--strength", "0.3,0.5,0.9", "--gamma", "1.5", "-o", tmp_path / "m.h5")
    assert res.code == 0, res
    data, aug = Store(data_h5), Store(tmp_path / "m.h5")
    assert aug.attrs["schema_version"] == SCHEMA_VERSION == 3 and aug.attrs["strategy"] == "diff-mix"
    src, other = aug.column("source_label"), aug.column("other_label")
    np.testing.assert_array_equal(src, data.labels[aug.column("source_index")])
    assert (other >= 0).all() and (other != src).all() and (other < len(MASKED_CLASSES)).all()
    strength, w = aug.column("strength"), aug.mix_weight
    assert w.dtype == np.float32 and len(set(strength.tolist())) > 1
    expected = {np.float32(s): np.float32(s ** 1.5) for s in (0.3, 0.5, 0.9)}
    np.testing.assert_array_equal(w, [expected[np.float32(s)] for s in strength])
    # the dominant class is the stored label; a weight of at least 0.5 goes to the partner class j
    np.testing.assert_array_equal(aug.labels, np.where(w >= 0.5, other, src))
    assert set(np.where(w >= 0.5, 1, 0).tolist()) == {0, 1}  # 0.3 and 0.5 stay with i, 0.9 goes to j
    names = [MASKED_CLASSES[o].replace("_", " ") for o in other]
    assert all(p == f"a photo of a {n}" for n, p in zip(names, aug.column("prompt"), strict=True))
    extra = aug.attrs["extra"]
    assert extra["family"] == "mix" and extra["mix"]["gamma"] == 1.5 and extra["mix"]["pairs"] == {"rule": "uniform"}
    assert aug.attrs["settings"]["gamma"] == 1.5 and aug.attrs["seed_derivation"]["role"] == "normal:mix"
    seeds = [image_seed(0, "normal", "strength", int(s), int(v), family="mix")
             for s, v in zip(aug.column("source_index"), aug.column("variant"), strict=True)]
    assert aug.column("seed").tolist() == seeds


def test_defaults_are_diff_mix_s_strengths_and_gamma_and_a_tie_goes_to_the_partner(data_h5):
    job = AugmentJob(data_h5, _settings(per_image=6))
    assert job.s.strength == [0.5, 0.7, 0.9] and job.s.gamma == 0.8 and job.s.pairs == "uniform"
    for p in job.plan:
        assert p.mix_weight == pytest.approx(p.strength ** 0.8) and p.label == p.other_label  # 0.5**0.8 > 0.5
    tie = AugmentJob(data_h5, _settings(strength=[0.25], gamma=0.5)).plan[0]
    assert tie.mix_weight == 0.5 and tie.label == tie.other_label
    job.store.close()


def test_every_image_is_the_stock_img2img_pipeline_s_toward_the_partner_class(data_h5, tmp_path, tiny_sd_path):
    """Image for image: stock StableDiffusionImg2ImgPipeline with class j's prompt, the image's strength and a
    generator seeded with its stored seed, on its source image."""
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline

    out = tmp_path / "m.h5"
    run_augment(data_h5, out, _settings(strength=[0.5, 1.0], steps=6), show_progress=False)
    data, aug = Store(data_h5), Store(out)
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_sd_path, safety_checker=None,
                                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    images = aug.images(slice(None))
    for k in range(0, len(aug), 2):  # every other image: half the stock calls
        src = data.images([int(aug.column("source_index")[k])])[0]
        ref = pipe(prompt=aug.column("prompt")[k], image=torch.from_numpy(src).permute(2, 0, 1)[None].float() / 255,
                   strength=float(aug.column("strength")[k]), num_inference_steps=6, guidance_scale=7.5,
                   generator=torch.Generator().manual_seed(int(aug.column("seed")[k])), output_type="np").images[0]
        assert np.abs((ref * 255).round().astype(int) - images[k]).max() <= 1, k


def test_uniform_pairs_cover_the_other_classes_and_confusion_pairs_follow_the_matrix(data_h5):
    data = Store(data_h5)
    rows, labels = data.indices("train"), data.labels
    s = _settings(per_image=200, strength=[0.5], gamma=0.8, pairs="uniform")
    uniform = plan_images(rows, labels, s, [0, 1, 2], family="mix")
    for c in range(3):
        drawn = np.array([p.other_label for p in uniform if p.source_label == c])
        counts = np.bincount(drawn, minlength=3)
        assert counts[c] == 0 and min(np.delete(counts, c)) > 0.35 * len(drawn)
    pairs = np.array([[0, 0.9, 0.1], [1.0, 0, 0], [0.5, 0.5, 0]])
    by_confusion = plan_images(rows, labels, s, [0, 1, 2], family="mix", pairs=pairs)
    for c in range(3):
        drawn = np.array([p.other_label for p in by_confusion if p.source_label == c])
        share = np.bincount(drawn, minlength=3) / len(drawn)
        np.testing.assert_allclose(share, pairs[c], atol=0.08)
    # the pairs are drawn from each image's own seed: same plan whatever else is planned
    again = plan_images(rows[:1], labels, s, [0, 1, 2], family="mix", pairs=pairs)
    assert [p.other_label for p in again] == [p.other_label for p in by_confusion[:len(again)]]


def test_confusion_is_measured_on_the_val_split_never_test(tmp_path):
    from dsc.augment.pairs import pair_probabilities, val_confusion
    from dsc.testing import masked_store

    path = masked_store(tmp_path / "d.h5", n_train=2, n_val=2)
    import h5py  # one val row per class becomes a test row: it must never be shown to the classifier

    with h5py.File(path, "r+") as h5:
        split = h5["samples/split"][()].astype(str)
        for c in range(3):
            split[np.flatnonzero(split == "val")[c * 1]] = "test"
        h5["samples/split"][...] = split.astype(object)
    store = Store(path)
    val = store.indices("val")
    seen: list[np.ndarray] = []
    given = np.array([[0.2, 0.6, 0.2], [0.1, 0.1, 0.8], [0.5, 0.0, 0.5]])

    def predict(images):  # the confusion a classifier would show: rows of ``given`` by the image's class
        seen.append(images)
        which = [next(int(store.labels[r]) for r in val if np.array_equal(store.images([r])[0], im))
                 for im in images]
        return given[which]

    confusion = val_confusion(predict, store, [0, 1, 2])
    shown = np.concatenate(seen)
    assert len(shown) == len(val) == 3
    test_images = store.images(store.indices("test"))
    assert not any(np.array_equal(t, s) for t in test_images for s in shown)
    np.testing.assert_allclose(confusion, given * (1 - np.eye(3)))
    p = pair_probabilities(confusion, [0, 1, 2])
    np.testing.assert_allclose(p, [[0, 0.75, 0.25], [1 / 9, 0, 8 / 9], [1, 0, 0]])
    np.testing.assert_allclose(pair_probabilities(confusion, [0, 2])[0], [0, 0, 1])  # only chosen classes


def test_confusion_pairs_from_a_filter_run_end_to_end(data_h5, tmp_path):
    from tests.augment.test_augment_filter import write_filter_run

    run = write_filter_run(tmp_path)
    out = tmp_path / "c.h5"
    run_augment(data_h5, out, _settings(pairs="confusion", filter=run, min_confidence=0.0), show_progress=False)
    aug = Store(out)
    pairs = aug.attrs["extra"]["mix"]["pairs"]
    assert pairs["rule"] == "confusion" and pairs["split"] == "val" and len(pairs["probabilities"]) == 3
    p = np.array(pairs["probabilities"])
    np.testing.assert_allclose(p.sum(axis=1), 1.0) and np.testing.assert_array_equal(np.diag(p), 0)
    assert len(aug) == 12 and aug.attrs["settings"]["pairs"] == "confusion"


def test_other_strategies_keep_their_plan_hash_and_hard_labels(data_h5, tmp_path):
    job = AugmentJob(data_h5, _settings(strategy="real-guidance"))
    assert not {"gamma", "pairs", "per_class"} & set(job.resume_settings())
    assert all(p.mix_weight == 0.0 and p.other_label == -1 for p in job.plan)
    job.store.close()
    run_augment(data_h5, tmp_path / "r.h5", _settings(strategy="real-guidance"), show_progress=False)
    aug = Store(tmp_path / "r.h5")
    assert aug.has("mix_weight") and (aug.mix_weight == 0).all()
    np.testing.assert_array_equal(aug.labels, aug.column("source_label"))
