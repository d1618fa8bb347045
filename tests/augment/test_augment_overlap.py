"""OOD negatives are never copies of the positives: a normal and an OOD store made with the same ``--seed``
share no image (issue 10, item 1). The old seed hash ignored the mode, so wherever the per-image strengths
matched, the "OOD" image was bit-identical to a positive."""

from __future__ import annotations

import numpy as np
import pytest

from dsc.augment import effective_settings, image_seed
from dsc.errors import ConfigError
from dsc.settings import AugmentSettings
from dsc.store import Store, shared_images
from dsc.testing import FAST_AUGMENT

#: the demo's settings: normal strengths drawn from DA-Fusion's list, OOD at the `strength` default (0.75)
DEMO_NORMAL = ["--strength", "0.25,0.5,0.75,1.0"]


def _augment(run_dsc, data_h5, out, *args: str) -> Store:
    res = run_dsc("augment", data_h5, "--strategy", "real-guidance", *FAST_AUGMENT, "--per-image", "4", *args, "-o", out)
    assert res.code == 0, res
    return Store(out)


def _shared(normal: Store, ood: Store) -> int:
    return int(np.isin(ood.column("digest"), normal.column("digest")).sum())


def test_normal_and_ood_stores_with_the_same_seed_share_no_image(run_dsc, data_h5, tmp_path):
    normal = _augment(run_dsc, data_h5, tmp_path / "normal.h5", "--mode", "normal", *DEMO_NORMAL)
    ood = _augment(run_dsc, data_h5, tmp_path / "ood.h5", "--mode", "ood", "--ood-strategy", "strength")
    # the plans overlap where it used to matter: same sources, and OOD's 0.75 is one of the normal strengths
    np.testing.assert_array_equal(normal.column("source_index"), ood.column("source_index"))
    assert (normal.column("strength") == 0.75).any() and set(ood.column("strength").tolist()) == {0.75}
    assert not set(normal.column("seed").tolist()) & set(ood.column("seed").tolist())
    assert _shared(normal, ood) == 0
    assert shared_images(normal, ood).shared == 0


def test_dafusion_preset_for_both_modes_shares_no_image(run_dsc, data_h5, tmp_path):
    normal = _augment(run_dsc, data_h5, tmp_path / "normal.h5", "--preset", "dafusion", "--mode", "normal")
    assert sorted(set(normal.attrs["settings"]["strength"])) == [0.25, 0.5, 0.75, 1.0]
    # the OOD preset no longer takes the normal strengths; a user who sets them anyway still gets new images
    ood = _augment(run_dsc, data_h5, tmp_path / "ood.h5", "--preset", "dafusion", "--mode", "ood",
                   "--strength", "0.25,0.5,0.75,1.0")
    assert set(ood.column("strength").tolist()) <= {0.25, 0.5, 0.75, 1.0}
    assert _shared(normal, ood) == 0
    assert not np.array_equal(normal.images(slice(None)), ood.images(slice(None)))


def test_seed_depends_on_mode_and_ood_strategy_only_where_it_should():
    normal = image_seed(0, "normal", "strength", 3, 1)
    assert normal == image_seed(0, "normal", "blend", 3, 1)  # the OOD strategy is no input of a normal image
    oods = {image_seed(0, "ood", s, 3, 1) for s in ("strength", "other-class", "blend", "inpaint-object")}
    assert len(oods) == 4 and normal not in oods
    assert image_seed(1, "normal", "strength", 3, 1) != normal
    assert len({image_seed(0, "ood", "strength", r, v) for r in range(20) for v in range(5)}) == 100
    assert 0 <= normal < 2**63


def test_provenance_records_the_inputs_of_every_seed(run_dsc, data_h5, tmp_path):
    ood = _augment(run_dsc, data_h5, tmp_path / "ood.h5", "--mode", "ood", "--ood-strategy", "blend", "--seed", "7")
    assert set(ood.column("base_seed").tolist()) == {7} and set(ood.column("ood_strategy").tolist()) == {"blend"}
    expected = [image_seed(7, "ood", "blend", int(r), int(v))
                for r, v in zip(ood.column("source_index"), ood.column("variant"), strict=True)]
    assert ood.column("seed").tolist() == expected
    assert ood.attrs["seed_derivation"]["inputs"] == ["base_seed", "mode", "ood_strategy", "source_index",
                                                      "variant"]
    normal = _augment(run_dsc, data_h5, tmp_path / "n.h5", "--mode", "normal", "--seed", "7")
    assert set(normal.column("ood_strategy").tolist()) == {""}
    assert normal.column("seed").tolist() == [
        image_seed(7, "normal", "", int(r), int(v))
        for r, v in zip(normal.column("source_index"), normal.column("variant"), strict=True)]


def _defaults(**kw) -> AugmentSettings:
    return effective_settings(AugmentSettings(**kw), {f"augment.{k}": "command line" for k in kw
                                                      if k not in ("preset", "mode", "ood_strategy")})


def test_ood_presets_never_reuse_the_normal_strengths_unless_set():
    for preset in ("thesis", None):
        normal = effective_settings(AugmentSettings(preset=preset, mode="normal")).strength
        ood = effective_settings(AugmentSettings(preset=preset, mode="ood")).strength
        assert min(ood) > max(normal), preset
    # DA-Fusion's normal strengths reach 1.0: no stronger edit is left for the `strength` strategy
    with pytest.raises(ConfigError, match="--preset dafusion") as exc:
        effective_settings(AugmentSettings(preset="dafusion", mode="ood"))
    assert "--strength" in exc.value.hint and "--ood-strategy" in exc.value.hint
    # ... unless the user sets the strengths, or picks a strategy that changes the conditioning
    assert _defaults(preset="dafusion", mode="ood", strength=[0.9]).strength == [0.9]
    blend = effective_settings(AugmentSettings(preset="dafusion", mode="ood", ood_strategy="blend"),
                               {"augment.ood_strategy": "command line"})
    assert blend.strength == [0.75] and blend.guidance == 7.5 and blend.per_image == 10
