"""`dsc report` flags runs whose negatives share images with their positives (issue 10, item 1)."""

from __future__ import annotations

import json
from pathlib import Path

from dsc.store import Store
from dsc.testing import pattern_store
from tests.data.test_overlap import write_synthetic

from .conftest import write_run


def _use(run: Path, synthetic: list[Path], negatives: list[Path], overlap: dict | None = None) -> None:
    """Record the stores in run.json as training does."""
    info = json.loads((run / "run.json").read_text())
    rec = lambda p: {"path": str(p.resolve()), "fingerprint": Store(p).fingerprint, "kind": "synthetic"}  # noqa: E731
    info["inputs"].update(synthetic=[rec(p) for p in synthetic], negatives=[rec(p) for p in negatives])
    if overlap is not None:
        info["inputs"]["overlap"] = overlap
    (run / "run.json").write_text(json.dumps(info))


def _stores(tmp_path: Path) -> dict[str, Path]:
    data = pattern_store(tmp_path / "data.h5", per_class=(4, 2, 2))
    normal = write_synthetic(tmp_path / "aug-normal.h5", data, ood=False, seeds=[1, 2, 3], strengths=[0.5] * 3)
    copies = Store(normal).images(slice(None)).copy()
    copies[2] = 255 - copies[2]
    return {"normal": normal,
            "copy": write_synthetic(tmp_path / "aug-ood-old.h5", data, ood=True, seeds=[7, 8, 9], strengths=[0.75] * 3,
                                    images=copies, schema=1),
            "clean": write_synthetic(tmp_path / "aug-ood.h5", data, ood=True, seeds=[4, 5, 6], strengths=[0.75] * 3)}


def test_runs_trained_on_shared_images_are_flagged(run_dsc, tmp_path):
    s = _stores(tmp_path)
    root = tmp_path / "runs"
    for seed in (0, 1):
        write_run(root, f"ce-none-s{seed}", seed=seed, top1=0.6)
        _use(write_run(root, f"ce-old-s{seed}", seed=seed, top1=0.7, label="normal+ood",
                       settings={"ood_loss": "outlier-exposure"}), [s["normal"]], [s["copy"]])
        _use(write_run(root, f"ce-new-s{seed}", seed=seed, top1=0.65, label="normal+ood",
                       settings={"ood_loss": "extra-class"}), [s["normal"]], [s["clean"]])
    res = run_dsc("report", root, "--json", "--no-curves", "--markdown", tmp_path / "r.md")
    assert res.code == 0, res
    report = json.loads(res.out)
    flagged = [w for w in report["warnings"] if "share" in w]
    assert len(flagged) == 1, report["warnings"]
    w = flagged[0]
    assert "2 run(s) (ce-old-s0, ce-old-s1)" in w and "share 2 of 3 images" in w
    assert "aug-ood-old.h5" in w and "aug-normal.h5" in w
    by_neg = {Path(c["negatives"]).name: c for c in report["overlap"]}
    assert by_neg["aug-ood-old.h5"]["overlap"]["shared"] == 2 and by_neg["aug-ood-old.h5"]["overlap"]["old_seeds"]
    assert by_neg["aug-ood.h5"]["overlap"]["shared"] == 0 and by_neg["aug-ood.h5"]["runs"] == ["ce-new-s0", "ce-new-s1"]
    assert "share 2 of 3 images" in (tmp_path / "r.md").read_text()
    text = run_dsc("report", root, "--no-curves")
    assert "Negatives vs positives" in text.out and "2 of 3" in text.out and "0 of 3" in text.out


def test_stores_gone_or_changed_are_not_checked_but_the_record_is_used(run_dsc, tmp_path):
    s = _stores(tmp_path)
    root = tmp_path / "runs"
    recorded = {"shared_images": 0, "same_conditions": 0, "pairs": [{
        "positives": str(s["normal"].resolve()), "negatives": str(s["clean"].resolve()), "n_negatives": 3,
        "shared": 0, "same_pixels": 0, "same_recipe": 0, "same_conditions": 0, "old_seeds": False}]}
    _use(write_run(root, "ce-new-s0", top1=0.65, label="normal+ood", settings={"ood_loss": "extra-class"}),
         [s["normal"]], [s["clean"]], recorded)
    _use(write_run(root, "ce-old-s0", top1=0.7, label="normal+ood", settings={"ood_loss": "outlier-exposure"}),
         [s["normal"]], [s["copy"]])
    s["clean"].unlink()
    s["copy"].unlink()
    res = run_dsc("report", root, "--json", "--no-curves")
    assert res.code == 0, res
    report = json.loads(res.out)
    by_neg = {Path(c["negatives"]).name: c for c in report["overlap"]}
    assert by_neg["aug-ood.h5"]["overlap"]["shared"] == 0 and "no longer exist" in by_neg["aug-ood.h5"]["note"]
    assert by_neg["aug-ood-old.h5"]["overlap"] is None
    assert not [w for w in report["warnings"] if "share" in w]
    text = run_dsc("report", root, "--no-curves")
    assert "not checked" in text.out


def test_runs_without_both_kinds_of_store_add_nothing(run_dsc, study):
    res = run_dsc("report", study, "--json", "--no-curves")
    assert json.loads(res.out)["overlap"] == []
    assert "Negatives vs positives" not in run_dsc("report", study, "--no-curves").out


def test_negatives_made_like_positives_get_a_milder_warning(run_dsc, tmp_path):
    data = pattern_store(tmp_path / "data.h5", per_class=(4, 2, 2))
    normal = write_synthetic(tmp_path / "aug-normal.h5", data, ood=False, seeds=[1, 2, 3], strengths=[0.25, 0.5, 0.75])
    ood = write_synthetic(tmp_path / "aug-ood.h5", data, ood=True, seeds=[4, 5, 6], strengths=[0.75] * 3)
    root = tmp_path / "runs"
    _use(write_run(root, "ce-ood-s0", top1=0.65, label="normal+ood"), [normal], [ood])
    report = json.loads(run_dsc("report", root, "--json", "--no-curves").out)
    (w,) = [w for w in report["warnings"] if "aug-ood.h5" in w]
    assert "1 of 3 negatives" in w and "only the noise differs" in w and "share" not in w
    assert report["overlap"][0]["overlap"]["same_conditions"] == 1
