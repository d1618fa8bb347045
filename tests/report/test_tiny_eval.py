"""Tiny evaluation sets are named in the warnings: a test class under 5 images moves in steps of 20 % or
more per image, a test split under 30 images by several points."""

from __future__ import annotations

import json

from .conftest import write_run


def _test_block(confusion: list[list[int]]) -> dict:
    n = sum(map(sum, confusion))
    return {"test": {"top1": 0.6, "top5": 1.0, "macro_f1": 0.55, "ece": 0.1, "n": n,
                     "per_class": {"gear": 0.6, "bolt": 0.6, "nut": 0.6}, "confusion": confusion}}


def test_small_classes_and_small_test_split_are_warned(run_dsc, tmp_path):
    root = tmp_path / "runs"
    tiny = [[3, 1, 0], [0, 4, 0], [1, 0, 9]]          # gear 4, bolt 4, nut 10 test images: 18 in all
    for s in (0, 1):
        write_run(root, f"none{s}", seed=s, extra=_test_block(tiny))
        write_run(root, f"syn{s}", seed=s, label="normal", extra=_test_block(tiny))
    res = run_dsc("report", root, "--json", "--no-curves")
    assert res.code == 0, res
    report = json.loads(res.out)
    warning = next(w for w in report["warnings"] if w.startswith("tiny evaluation set"))
    assert "only 18 images (< 30)" in warning and "5.6 points" in warning
    assert "gear (4 images), bolt (4 images)" in warning and "nut" not in warning
    assert "steps of 25 % or more" in warning
    entry = report["caveats"]["tiny_evaluation"][0]
    assert entry["test_images"] == 18 and entry["small_classes"] == {"gear": 4, "bolt": 4}
    md = tmp_path / "r.md"
    res = run_dsc("report", root, "--no-curves", "--markdown", md)
    err = " ".join(res.err.split())
    assert "tiny evaluation set" in err and "gear (4 images)" in err       # the log on stderr
    assert "**Warning:** tiny evaluation set" in md.read_text()


def test_enough_test_images_give_no_warning(run_dsc, tmp_path):
    root = tmp_path / "runs"
    fine = [[10, 0, 0], [0, 10, 0], [0, 5, 5]]         # 30 images, every class 10
    for s in (0, 1):
        write_run(root, f"none{s}", seed=s, extra=_test_block(fine))
    report = json.loads(run_dsc("report", root, "--json", "--no-curves").out)
    assert not any("tiny evaluation" in w for w in report["warnings"])
    assert "tiny_evaluation" not in report.get("caveats", {})


def test_only_the_test_split_size_known(run_dsc, tmp_path):
    """Without a confusion matrix the classes cannot be counted; the split size still is."""
    root = tmp_path / "runs"
    block = _test_block([[2, 0, 0], [0, 2, 0], [0, 0, 2]])
    block["test"]["confusion"] = None
    write_run(root, "none0", seed=0, extra=block)
    report = json.loads(run_dsc("report", root, "--json", "--no-curves").out)
    warning = next(w for w in report["warnings"] if w.startswith("tiny evaluation set"))
    assert "only 6 images" in warning and "class(es)" not in warning
