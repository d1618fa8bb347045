"""`dsc augment --strategy text-to-image`: source-free images (``source_index`` -1) from the class prompt alone, M per
class, each what stock ``StableDiffusionPipeline`` makes; kept by few-shot runs, checked by the overlap rule."""

from __future__ import annotations

import numpy as np
import pytest

from dsc.augment import image_seed, run_augment
from dsc.settings import AugmentSettings
from dsc.store import Store
from dsc.testing import FAST_AUGMENT, MASKED_CLASSES, MASKED_RES

T2I = [*FAST_AUGMENT, "--strategy", "text-to-image"]


def _settings(**kw) -> AugmentSettings:
    base = dict(model="tiny", strategy="text-to-image", resolution=MASKED_RES, steps=4, per_image=2, batch_size=3)
    return AugmentSettings(**{**base, **kw})


def test_images_per_class_without_a_source_and_their_provenance(run_dsc, data_h5, tokens_dir, tmp_path):
    res = run_dsc("augment", data_h5, *T2I, "--per-class", "3", "--tokens", tokens_dir, "-o", tmp_path / "t.h5")
    assert res.code == 0, res
    aug = Store(tmp_path / "t.h5")
    assert len(aug) == 9 and (aug.column("source_index") == -1).all() and (aug.mix_weight == 0).all()
    np.testing.assert_array_equal(aug.labels, np.repeat([0, 1, 2], 3))
    np.testing.assert_array_equal(aug.column("source_label"), aug.labels)
    np.testing.assert_array_equal(aug.column("variant"), np.tile([0, 1, 2], 3))
    assert (aug.column("strength") == 1.0).all() and (aug.column("other_label") == -1).all()
    assert aug.column("prompt")[0] == "a photo of a <gear>" and not aug.column("is_ood").any()
    seeds = [image_seed(0, "normal", "strength", int(c), int(v), family="text")
             for c, v in zip(aug.labels, aug.column("variant"), strict=True)]
    assert aug.column("seed").tolist() == seeds and len(set(seeds)) == 9
    a = aug.attrs
    assert a["seed_derivation"]["inputs"][3] == "class_label" and a["seed_derivation"]["role"] == "normal:text"
    assert a["inputs"]["tokens_manifest"]["sha256"] and a["extra"]["family"] == "text"
    assert a["summary"]["gear"] == {"sources": 0, "images": 3, "ood": 0, "mean_strength": 1.0}
    images = aug.images(slice(None))
    assert not np.array_equal(images[0], images[1])


def test_default_count_is_the_image_strategies_budget_and_names_work_without_tokens(data_h5):
    from dsc.augment import AugmentJob

    job = AugmentJob(data_h5, _settings(per_image=3, examples_per_class=1))
    assert [sum(p.source_label == c for p in job.plan) for c in range(3)] == [3, 3, 3]  # 1 source x 3
    assert job.s.strength == [1.0] and job.s.per_class is None
    job.store.close()
    job = AugmentJob(data_h5, _settings(preset="dafusion"))  # a preset's strengths do not apply
    assert job.s.strength == [1.0] and len(job.plan) == 6 * 10
    job.store.close()


@pytest.mark.parametrize("scheduler", ["default", "euler-a"])
def test_every_image_is_the_stock_text_to_image_pipeline_s(data_h5, tmp_path, tiny_sd_path, scheduler):
    import torch
    from diffusers import StableDiffusionPipeline

    from dsc.diffusion.schedulers import make_scheduler

    out = tmp_path / "t.h5"
    run_augment(data_h5, out, _settings(per_class=2, steps=5, scheduler=scheduler, batch_size=4), show_progress=False)
    aug = Store(out)
    pipe = StableDiffusionPipeline.from_pretrained(tiny_sd_path, safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = make_scheduler(scheduler, pipe.scheduler)
    pipe.set_progress_bar_config(disable=True)
    images = aug.images(slice(None))
    for k in range(len(aug)):
        ref = pipe(prompt=aug.column("prompt")[k], height=MASKED_RES, width=MASKED_RES, num_inference_steps=5,
                   guidance_scale=7.5, generator=torch.Generator().manual_seed(int(aug.column("seed")[k])),
                   output_type="np").images[0]
        assert np.abs((ref * 255).round().astype(int) - images[k]).max() <= 1, k


def test_few_shot_runs_keep_source_free_images(data_h5, tmp_path):
    from dsc.data.stores import load_synthetic

    run_augment(data_h5, tmp_path / "t.h5", _settings(per_class=2), show_progress=False)
    run_augment(data_h5, tmp_path / "r.h5", _settings(strategy="real-guidance"), show_progress=False)
    drawn = Store(data_h5).indices("train")[::2]  # a few-shot draw: one train image per class
    t2i = load_synthetic(Store(tmp_path / "t.h5"), 16, ood=False, n_classes=3, sources=drawn)
    assert len(t2i) == 6 and (t2i.source_index == -1).all()
    img2img = load_synthetic(Store(tmp_path / "r.h5"), 16, ood=False, n_classes=3, sources=drawn)
    assert len(img2img) == 6 and set(img2img.source_index.tolist()) == set(drawn.tolist())


def test_the_probe_of_a_few_shot_run_keeps_source_free_images(data_h5, tmp_path):
    import torch

    from dsc.evaluate.embeddings import FeatureSet
    from dsc.evaluate.probe import _few_shot

    run_augment(data_h5, tmp_path / "t.h5", _settings(per_class=2), show_progress=False)
    data, t2i = Store(data_h5), Store(tmp_path / "t.h5")
    train = data.indices("train")
    sets = [FeatureSet("train", torch.zeros(len(train), 4), data.labels[train], train),
            FeatureSet("synthetic", torch.zeros(len(t2i), 4), t2i.labels, np.arange(len(t2i)))]
    real, syn = _few_shot(sets, [data, t2i], data, {"settings": {"examples_per_class": 1, "seed": 0}})
    assert len(real.rows) == 3 and len(syn.rows) == len(t2i) == 6


def test_source_free_positives_and_ood_negatives_are_compared_without_false_matches(data_h5, tmp_path):
    from dsc.store.overlap import shared_images

    run_augment(data_h5, tmp_path / "t.h5", _settings(per_class=2), show_progress=False)
    run_augment(data_h5, tmp_path / "o.h5", _settings(strategy="real-guidance", mode="ood", strength=[0.75]),
                show_progress=False)
    o = shared_images(Store(tmp_path / "t.h5"), Store(tmp_path / "o.h5"))
    assert o.n_negatives == 12 and o.shared == 0 and o.same_conditions == 0


@pytest.mark.parametrize("strategy", ["text-to-image", "diff-mix"])
def test_preview_shows_the_new_strategies(run_dsc, data_h5, tmp_path, monkeypatch, strategy):
    import dsc.report.figures.tiles as tiles

    figures = []
    draw = tiles.tile_figure
    monkeypatch.setattr(tiles, "tile_figure", lambda rows, **kw: figures.append(draw(rows, **kw)) or figures[-1])
    res = run_dsc("augment", data_h5, *FAST_AUGMENT, "--strategy", strategy, "--preview", "2",
                  "-o", tmp_path / "grid.png")
    assert res.code == 0, res
    assert (tmp_path / "grid.png").is_file() and not list(tmp_path.glob("*.h5*"))
    titles = [ax.get_title() for ax in figures[0].axes if ax.get_title()]
    if strategy == "text-to-image":
        assert len(titles) == 4 and all("no source" in t and "seed " in t for t in titles)
        assert {t.split("\n")[0] for t in titles} == set(MASKED_CLASSES[:2])
    else:
        mixed = [t for t in titles if "→" in t]
        assert len(mixed) == 4 and all("weight 0." in t for t in mixed)
