"""`dsc augment --filter RUN --min-confidence X` (normal) and `--mode ood --filter RUN --max-source-confidence X`:
scored per batch, rejections recorded, resume-safe."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from dsc.augment import run_augment
from dsc.settings import AugmentSettings
from dsc.store import open_store
from dsc.testing import MASKED_CLASSES, MASKED_RES

CLI = ["--model", "tiny", "--strategy", "real-guidance", "--resolution", str(MASKED_RES), "--steps", "4",
       "--per-image", "3", "--batch-size", "4"]


def write_filter_run(root: Path, classes: list[str] = MASKED_CLASSES, *, classifier: bool = True) -> Path:
    """A baseline-like run: timm:test_resnet encoder + a random linear head (run.json with classes)."""
    import torch

    from dsc.backbones import create_backbone
    from dsc.train.checkpoint import save_checkpoint

    run = root / "filter-run"
    run.mkdir(parents=True)
    bb = create_backbone("timm:test_resnet")
    gen = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(bb.feature_dim, len(classes))
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * 3)
    parts = {"encoder": bb.module, **({"classifier": head} if classifier else {})}
    save_checkpoint(run, "best", parts, {"epoch": 1})
    (run / "run.json").write_text(json.dumps({
        "command_name": "baseline", "backbone": {"name": "timm:test_resnet"},
        "settings": {"image_size": 32}, "classes": classes}))
    return run


@pytest.fixture(scope="module")
def filter_run(tmp_path_factory) -> Path:
    return write_filter_run(tmp_path_factory.mktemp("frun"))


def _settings(**kw) -> AugmentSettings:
    base = dict(model="tiny", strategy="real-guidance", resolution=MASKED_RES, steps=4, per_image=3, batch_size=4,
                strength=[0.5, 1.0])
    return AugmentSettings(**{**base, **kw})


def _filter_attrs(aug) -> dict:
    """The root ``filter`` attribute (a JSON string until the store schema parses it)."""
    f = aug.attrs["filter"]
    return json.loads(f) if isinstance(f, str) else f


def _rejections(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as h5:
        return {k: h5["rejections"][k][()] for k in h5["rejections"]}


@pytest.fixture(scope="module")
def scored(data_h5, filter_run, tmp_path_factory) -> tuple[Path, dict[tuple[int, int], float]]:
    """Threshold 0: every image kept, every score recorded; (source_index, variant) -> score."""
    out = tmp_path_factory.mktemp("scored") / "all.h5"
    run_augment(data_h5, out, _settings(filter=filter_run, min_confidence=0.0), show_progress=False)
    aug = open_store(out, kind="synthetic")
    keys = zip(aug.column("source_index").tolist(), aug.column("variant").tolist(), strict=True)
    return out, dict(zip(keys, aug.column("filter_score").tolist(), strict=True))


def test_threshold_zero_rejects_nothing_and_scores_everything(scored, data_h5):
    out, scores = scored
    aug = open_store(out, kind="synthetic")
    assert len(aug) == 6 * 3 and len(_rejections(out)["score"]) == 0
    vals = np.array(list(scores.values()))
    assert ((vals > 0) & (vals < 1)).all() and len(set(vals.round(5).tolist())) > 1
    f = _filter_attrs(aug)
    assert f["rejected"] == 0 and f["accepted"] == 18 and f["rule"] == "keep score >= 0"
    assert f["fingerprint"] and f["run"].endswith("filter-run")


def test_threshold_splits_accepted_and_rejected(scored, data_h5, filter_run, run_dsc, tmp_path):
    _, scores = scored
    x = float(np.median(list(scores.values())))
    res = run_dsc("augment", data_h5, *CLI, "--strength", "0.5,1.0", "--filter", filter_run,
                  "--min-confidence", f"{x:.6f}", "-o", tmp_path / "f.h5")
    assert res.code == 0, res
    assert "rejected" in res.out and "accepted %" in res.out and "accepted by the filter" in res.out
    x = float(f"{x:.6f}")
    aug = open_store(tmp_path / "f.h5", kind="synthetic")
    rej = _rejections(tmp_path / "f.h5")
    acc_scores = aug.column("filter_score")
    assert len(aug) + len(rej["score"]) == len(scores) and 0 < len(aug) < len(scores)
    assert (acc_scores >= x).all() and (rej["score"] < x).all()
    # the same images get the same scores as in the unfiltered run: the accepted set is determined
    for s, v, sc in zip(aug.column("source_index"), aug.column("variant"), acc_scores, strict=True):
        assert sc == pytest.approx(scores[(int(s), int(v))], abs=1e-5)
    for s, v, sc in zip(rej["source_index"], rej["variant"], rej["score"], strict=True):
        assert sc == pytest.approx(scores[(int(s), int(v))], abs=1e-5)
    assert set(rej) >= {"source_index", "variant", "source_label", "seed", "strength", "score"}
    f = _filter_attrs(aug)
    assert f["accepted"] == len(aug) and f["rejected"] == len(rej["score"])
    per_class = f["per_class"]
    assert sum(c["accepted"] + c["rejected"] for c in per_class.values()) == len(scores)
    assert aug.attrs["summary"][MASKED_CLASSES[0]]["generated"] == 6


def test_ood_mode_rejects_images_still_in_their_source_class(data_h5, filter_run, run_dsc, tmp_path):
    """--max-source-confidence X: an OOD image the real-data classifier still gives its source class with
    p > X is label noise as a negative; it is rejected and recorded (this used to be --min-confidence)."""
    out_all = tmp_path / "all.h5"
    run_augment(data_h5, out_all, _settings(mode="ood", filter=filter_run, max_source_confidence=1.0),
                show_progress=False)
    everything = open_store(out_all, kind="synthetic")
    assert len(everything) == 18 and len(_rejections(out_all)["score"]) == 0
    x = float(f"{np.median(everything.column('filter_score')):.6f}")
    out = tmp_path / "ood.h5"
    res = run_dsc("augment", data_h5, *CLI, "--strength", "0.5,1.0", "--mode", "ood", "--filter", filter_run,
                  "--max-source-confidence", str(x), "-o", out)
    assert res.code == 0, res
    aug, rej = open_store(out, kind="synthetic"), _rejections(out)
    assert 0 < len(aug) < 18 and len(aug) + len(rej["score"]) == 18
    assert (aug.column("filter_score") <= x).all() and (rej["score"] > x).all()
    assert aug.column("is_ood").all() and (rej["source_label"] >= 0).all()
    f = _filter_attrs(aug)
    assert f["rule"] == f"keep score <= {x:g}" and f["max_source_confidence"] == x and "min_confidence" not in f
    assert f["rejected"] == len(rej["score"]) and f["accepted"] == len(aug)


def test_each_mode_has_its_own_threshold(data_h5, filter_run, run_dsc, tmp_path):
    from dsc.augment import DEFAULT_MAX_SOURCE_CONFIDENCE, effective_settings
    from dsc.errors import ConfigError

    ood = effective_settings(_settings(mode="ood", filter=filter_run))
    assert ood.max_source_confidence == DEFAULT_MAX_SOURCE_CONFIDENCE == 0.5 and ood.min_confidence is None
    out = tmp_path / "e.h5"
    _fails(run_dsc("augment", data_h5, *CLI, "--mode", "ood", "--filter", filter_run, "--min-confidence", "0.5",
                   "-o", out), "--min-confidence filters normal images", "--max-source-confidence")
    _fails(run_dsc("augment", data_h5, *CLI, "--filter", filter_run, "--max-source-confidence", "0.5", "-o", out),
           "--max-source-confidence filters OOD images", "--min-confidence")
    _fails(run_dsc("augment", data_h5, *CLI, "--mode", "ood", "--max-source-confidence", "0.5", "-o", out),
           "--max-source-confidence needs --filter")
    # a config file may hold both thresholds: each mode reads its own
    both = {"augment.min_confidence": "config file dsc.toml", "augment.max_source_confidence": "config file dsc.toml"}
    s = _settings(filter=filter_run, min_confidence=0.7, max_source_confidence=0.2)
    assert effective_settings(s, both).min_confidence == 0.7 and effective_settings(s, both).max_source_confidence is None
    o = effective_settings(s.model_copy(update={"mode": "ood"}), both)
    assert o.max_source_confidence == 0.2 and o.min_confidence is None
    with pytest.raises(ConfigError, match="filters OOD images"):
        effective_settings(s)                       # set in code: as if typed


def test_resume_with_filter_equals_uninterrupted(scored, data_h5, filter_run, tmp_path):
    _, scores = scored
    x = float(np.median(list(scores.values())))
    settings = _settings(filter=filter_run, min_confidence=x)
    run_augment(data_h5, tmp_path / "full.h5", settings, show_progress=False)

    def crash(done: int, total: int) -> None:
        if done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_augment(data_h5, tmp_path / "r.h5", settings, show_progress=False, on_batch=crash)
    run_augment(data_h5, tmp_path / "r.h5", settings, resume=True, show_progress=False)
    a, b = open_store(tmp_path / "full.h5"), open_store(tmp_path / "r.h5")
    for col in ("source_index", "variant", "seed", "filter_score"):
        np.testing.assert_array_equal(a.column(col), b.column(col))
    np.testing.assert_array_equal(a.images(slice(None)), b.images(slice(None)))
    ra, rb = _rejections(tmp_path / "full.h5"), _rejections(tmp_path / "r.h5")
    for k in ra:
        np.testing.assert_array_equal(ra[k], rb[k])


def _fails(res, *needles: str) -> None:
    assert res.code == 1, res
    assert "Traceback" not in res.err, res
    for needle in needles:
        assert needle in res.err, res


def test_filter_errors(run_dsc, data_h5, tmp_path):
    out = tmp_path / "e.h5"
    _fails(run_dsc("augment", data_h5, *CLI, "--min-confidence", "0.5", "-o", out), "--min-confidence needs --filter")
    _fails(run_dsc("augment", data_h5, *CLI, "--filter", tmp_path / "nope", "-o", out), "does not exist")
    other = write_filter_run(tmp_path / "other", ["a", "b", "c"])
    _fails(run_dsc("augment", data_h5, *CLI, "--filter", other, "-o", out), "has classes a, b, c")
    bare = write_filter_run(tmp_path / "bare", classifier=False)
    _fails(run_dsc("augment", data_h5, *CLI, "--filter", bare, "-o", out), "has no classifier")
    run = write_filter_run(tmp_path / "ok")
    _fails(run_dsc("augment", data_h5, *CLI, "--filter", run, "--min-confidence", "1.5", "-o", out),
           "min_confidence")
    assert not out.exists() and not Path(str(out) + ".shards").exists()


def test_default_threshold(data_h5, filter_run, tmp_path):
    from dsc.augment import DEFAULT_MIN_CONFIDENCE, effective_settings

    assert effective_settings(_settings(filter=filter_run)).min_confidence == DEFAULT_MIN_CONFIDENCE == 0.5
