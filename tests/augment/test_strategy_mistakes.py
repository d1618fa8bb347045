"""Mistakes with diff-mix and text-to-image, typed as a user types them: one line each, naming the fix."""

from __future__ import annotations

import pytest

from dsc.testing import FAST_AUGMENT

CASES = [
    (["--strategy", "diff-mix", "--classes", "bolt"], "only one class (bolt)", "at least two classes"),
    (["--strategy", "diff-mix", "--pairs", "confusion"], "no --filter RUN", "--pairs uniform"),
    (["--strategy", "diff-mix", "--mode", "ood"], "has no --mode ood", "drop --mode ood"),
    (["--strategy", "text-to-image", "--mode", "ood"], "has no --mode ood", "drop --mode ood"),
    (["--strategy", "text-to-image", "--strength", "0.5"], "starts every image from noise", "drop --strength"),
    (["--strategy", "text-to-image", "--mask", "object"], "no source image to mask", "drop --mask"),
    (["--strategy", "real-guidance", "--gamma", "0.5"], "--gamma is an option of --strategy diff-mix",
     "use --strategy diff-mix"),
    (["--strategy", "dafusion", "--pairs", "uniform"], "--pairs is an option of --strategy diff-mix", "drop --pairs"),
    (["--strategy", "diff-mix", "--per-class", "3"], "--per-class is an option of --strategy text-to-image",
     "use --strategy text-to-image"),
    (["--strategy", "diff-mix", "--gamma", "0"], "gamma", ""),
    (["--strategy", "diff-mix", "--pairs", "nearest"], "pairs", ""),
    (["--strategy", "diff-mix", "--tokens", "missing-tokens"], "missing-tokens", ""),
]


@pytest.mark.parametrize(("args", "problem", "fix"), CASES, ids=[" ".join(c[0][1:]) for c in CASES])
def test_mistakes_are_one_line_errors(run_dsc, data_h5, tmp_path, args, problem, fix):
    res = run_dsc("augment", data_h5, *FAST_AUGMENT, *args, "-o", tmp_path / "a.h5")
    assert res.code == 1 and problem in res.err and fix in res.err, res
    assert "Traceback" not in res.err and not list(tmp_path.glob("a.h5*"))
    assert len([line for line in res.err.splitlines() if line.startswith("Error")]) == 1


def test_diff_mix_tokens_missing_a_class_are_refused_before_the_model_loads(run_dsc, data_h5, tmp_path, tiny_sd):
    from dsc.testing import write_tokens

    tokens = write_tokens(tmp_path / "TOKENS", tiny_sd, ["gear"])
    res = run_dsc("augment", data_h5, *FAST_AUGMENT, "--strategy", "diff-mix", "--tokens", tokens,
                  "-o", tmp_path / "a.h5")
    assert res.code == 1 and "bolt" in res.err and "brake_caliper" in res.err, res
