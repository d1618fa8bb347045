"""`dsc augment` end to end on the tiny model: counts, provenance, OOD flags, masks, splits, preview."""

from __future__ import annotations

import numpy as np
import pytest

from dsc.errors import MismatchError
from dsc.store import Store, check_same_source, open_store
from dsc.testing import FAST_AUGMENT, MASKED_CLASSES, MASKED_RES


def test_normal_augment_counts_labels_and_provenance(run_dsc, data_h5, tokens_dir, tmp_path):
    res = run_dsc("augment", data_h5, "--tokens", tokens_dir, *FAST_AUGMENT, "-o", tmp_path / "aug.h5")
    assert res.code == 0, res
    assert "synthetic images per source class" in res.out and "images/s" in res.out
    data, aug = Store(data_h5), open_store(tmp_path / "aug.h5", kind="synthetic")
    train = data.indices("train")
    assert len(aug) == train.size * 2 and aug.classes == MASKED_CLASSES
    np.testing.assert_array_equal(aug.column("source_index"), np.repeat(train, 2))
    np.testing.assert_array_equal(aug.column("variant"), np.tile([0, 1], train.size))
    np.testing.assert_array_equal(aug.labels, data.labels[np.repeat(train, 2)])
    np.testing.assert_array_equal(aug.column("source_label"), aug.labels)
    assert not aug.column("is_ood").any() and set(aug.column("split")) == {"train"}
    assert len(set(aug.column("seed").tolist())) == len(aug)
    prompts = aug.column("prompt")
    assert prompts[0] == "a photo of a <gear>" and "<brake_caliper>" in prompts[-1]
    assert set(aug.column("strength").tolist()) == {0.5} and set(aug.column("steps").tolist()) == {4}
    a = aug.attrs
    assert a["inputs"]["data_fingerprint"] == data.fingerprint and a["mode"] == "normal"
    assert a["inputs"]["tokens_manifest"]["sha256"] and a["model_id"] == "tiny"
    assert a["evaluation_only"] is False or a["evaluation_only"] == 0
    assert a["summary"]["gear"]["images"] == 4 and "generate" in a["timings"]
    assert a["sources"]["augment.model"] == "command line" and a["settings"]["guidance"] == 7.5
    check_same_source(data, aug)
    images = aug.images(slice(None))
    assert images.shape == (len(aug), MASKED_RES, MASKED_RES, 3)
    assert not np.array_equal(images[0], images[1])  # variants differ


@pytest.mark.parametrize("strategy", ["strength", "other-class", "blend"])
def test_ood_images_are_flagged_never_labelled_as_a_class(run_dsc, data_h5, strategy, tmp_path):
    res = run_dsc("augment", data_h5, "--strategy", "real-guidance", "--mode", "ood", "--ood-strategy", strategy,
                  *FAST_AUGMENT, "-o", tmp_path / "ood.h5")
    assert res.code == 0, res
    data, aug = Store(data_h5), Store(tmp_path / "ood.h5")
    assert (aug.labels == -1).all() and aug.column("is_ood").all()
    np.testing.assert_array_equal(aug.column("source_label"), data.labels[aug.column("source_index")])
    assert aug.attrs["ood_strategy"] == strategy and aug.attrs["mode"] == "ood"
    other = aug.column("other_label")
    if strategy == "strength":
        assert (other == -1).all() and set(aug.column("strength").tolist()) == {0.75}
        assert aug.column("prompt")[0] == "a photo of a gear"
    else:
        assert (other >= 0).all() and (other != aug.column("source_label")).all()
        if strategy == "other-class":
            names = [MASKED_CLASSES[o].replace("_", " ") for o in other]
            assert all(n in p for n, p in zip(names, aug.column("prompt"), strict=True))


def test_thesis_preset_and_explicit_values(run_dsc, data_h5, tmp_path):
    res = run_dsc("augment", data_h5, "--strategy", "real-guidance", "--preset", "thesis", *FAST_AUGMENT,
                  "--mode", "ood", "-o", tmp_path / "t.h5")
    assert res.code == 0, res
    aug = Store(tmp_path / "t.h5")
    s = aug.attrs["settings"]
    assert s["strength"] == [0.5] and s["guidance"] == 15.0 and s["examples_per_class"] == 16
    assert s["per_image"] == 2  # the explicit --per-image wins over the preset's 4


def test_mask_object_keeps_pixels_outside_the_dilated_mask(run_dsc, data_h5, tmp_path):
    res = run_dsc("augment", data_h5, "--strategy", "real-guidance", "--mask", "object", "--mask-dilation", "2",
                  *FAST_AUGMENT, "--strength", "1.0", "-o", tmp_path / "m.h5")
    assert res.code == 0, res
    data, aug = Store(data_h5), Store(tmp_path / "m.h5")
    src = data.images(aug.column("source_index"))
    out = aug.images(slice(None))
    outside = np.ones((MASKED_RES, MASKED_RES), dtype=bool)
    outside[10:22, 10:22] = False  # the 8x8 mask grown by 2 px
    np.testing.assert_array_equal(out[:, outside], src[:, outside])
    assert np.abs(out[:, ~outside].astype(int) - src[:, ~outside]).mean() > 1


def test_inpaint_object_ood_and_background_mask(run_dsc, data_h5, tmp_path):
    res = run_dsc("augment", data_h5, "--strategy", "real-guidance", "--mode", "ood", "--ood-strategy",
                  "inpaint-object", *FAST_AUGMENT, "-o", tmp_path / "io.h5")
    assert res.code == 0, res
    aug = Store(tmp_path / "io.h5")
    assert aug.attrs["settings"]["mask"] == "object" and aug.column("is_ood").all()
    assert aug.column("prompt")[0] == "a photo of an object [negative: a photo of a gear]"
    res = run_dsc("augment", data_h5, "--strategy", "real-guidance", "--mask", "background", "--mask-dilation",
                  "0", *FAST_AUGMENT, "-o", tmp_path / "bg.h5")
    assert res.code == 0, res
    data, bg = Store(data_h5), Store(tmp_path / "bg.h5")
    src = data.images(bg.column("source_index"))
    np.testing.assert_array_equal(bg.images(slice(None))[:, 12:20, 12:20], src[:, 12:20, 12:20])


def test_val_split_is_evaluation_only_and_refused_for_training(run_dsc, data_h5, tmp_path):
    res = run_dsc("augment", data_h5, "--strategy", "real-guidance", "--split", "val", *FAST_AUGMENT, "-o", tmp_path / "v.h5")
    assert res.code == 0, res
    data, aug = Store(data_h5), Store(tmp_path / "v.h5")
    assert aug.evaluation_only and set(aug.column("split")) == {"val"}
    assert set(aug.column("source_index").tolist()) == set(data.indices("val").tolist())
    check_same_source(data, aug, training=False)
    with pytest.raises(MismatchError, match="evaluation-only"):
        check_same_source(data, aug, training=True)


def test_classes_and_examples_per_class_select_sources(run_dsc, data_h5, tmp_path):
    res = run_dsc("augment", data_h5, "--strategy", "real-guidance", "--classes", "bolt",
                  "--examples-per-class", "1", *FAST_AUGMENT, "-o", tmp_path / "c.h5")
    assert res.code == 0, res
    aug = Store(tmp_path / "c.h5")
    assert len(aug) == 2 and set(aug.labels.tolist()) == {1}


def test_preview_writes_a_labelled_grid_and_no_store(run_dsc, data_h5, tmp_path, monkeypatch):
    """Every tile is labelled (class, real row or strength, seed) at >= 8 pt; the PNG is >= 150 dpi."""
    from PIL import Image

    import dsc.report.figures.tiles as tiles

    figures = []
    draw = tiles.tile_figure
    monkeypatch.setattr(tiles, "tile_figure", lambda rows, **kw: figures.append(draw(rows, **kw)) or figures[-1])
    res = run_dsc("augment", data_h5, "--strategy", "real-guidance", *FAST_AUGMENT, "--preview", "2",
                  "-o", tmp_path / "grid.png")
    assert res.code == 0, res
    im = Image.open(tmp_path / "grid.png")
    assert min(im.info["dpi"]) >= 150 and im.size[0] > im.size[1] > 2 * MASKED_RES   # 2 rows of 1 real + 2 variants
    assert not list(tmp_path.glob("*.h5*"))
    titles = [ax.get_title() for ax in figures[0].axes if ax.get_title()]
    assert len(titles) == 6 and sum("real image, row" in t for t in titles) == 2
    variants = [t for t in titles if "strength" in t]
    assert len(variants) == 4 and all(t.split("\n")[0] in MASKED_CLASSES and "seed " in t for t in variants)
    assert all(ax.title.get_fontsize() >= 8 for ax in figures[0].axes if ax.get_title())


def test_preview_refuses_an_unknown_figure_type(run_dsc, data_h5, tmp_path):
    res = run_dsc("augment", data_h5, "--strategy", "real-guidance", *FAST_AUGMENT, "--preview", "1",
                  "-o", tmp_path / "grid.jpg")
    assert res.code == 1 and ".png" in res.err and not (tmp_path / "grid.jpg").exists()


def test_prompts_encoded_once_per_class_and_sources_once_per_image(data_h5, tmp_path, monkeypatch):
    from dsc_augmenters.real_guidance import RealGuidanceAugmenter

    import dsc.diffusion.generate as gen
    from dsc.augment import run_augment
    from dsc.settings import AugmentSettings

    prompts, sources, unet_batches = [], [], []
    encode, encode_source, denoise = RealGuidanceAugmenter.encode, gen.encode_source, gen.denoise
    monkeypatch.setattr(RealGuidanceAugmenter, "encode",
                        lambda self, c, p: prompts.extend(p) or encode(self, c, p))
    monkeypatch.setattr(gen, "encode_source", lambda vae, px, *a, **k: sources.append(1) or encode_source(vae, px, *a, **k))
    monkeypatch.setattr(gen, "denoise", lambda vae, unet, sch, reqs, **k: unet_batches.append(len(reqs)) or
                        denoise(vae, unet, sch, reqs, **k))
    s = AugmentSettings(model="tiny", strategy="real-guidance", resolution=MASKED_RES, steps=4, per_image=3, batch_size=4)
    result = run_augment(data_h5, tmp_path / "a.h5", s, show_progress=False)
    assert result.n_images == 18  # 6 train images x 3 (batches of 4 cut across source images)
    assert sorted(prompts) == sorted(["", "a photo of a gear", "a photo of a bolt", "a photo of a brake caliper"])
    assert len(sources) == 6 and unet_batches == [4, 4, 4, 4, 2]


def test_inpainting_model_edits_only_the_mask(run_dsc, data_h5, tmp_path):
    res = run_dsc("augment", data_h5, "--strategy", "real-guidance", *FAST_AUGMENT, "--model", "tiny-inpaint",
                  "--mask", "object", "--mask-dilation", "0", "-o", tmp_path / "i9.h5")
    assert res.code == 0, res
    data, aug = Store(data_h5), Store(tmp_path / "i9.h5")
    assert aug.attrs["inputs"]["model"]["inpainting_unet"]
    src, out = data.images(aug.column("source_index")), aug.images(slice(None))
    inside = np.zeros((MASKED_RES, MASKED_RES), dtype=bool)
    inside[12:20, 12:20] = True
    np.testing.assert_array_equal(out[:, ~inside], src[:, ~inside])
    res = run_dsc("augment", data_h5, "--strategy", "real-guidance", *FAST_AUGMENT, "--model", "tiny-inpaint",
                  "-o", tmp_path / "i9none.h5")
    assert res.code == 1 and "inpainting UNet" in res.err
