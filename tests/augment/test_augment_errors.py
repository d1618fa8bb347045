"""Bad inputs to `dsc augment`: one clear line, exit 1, nothing written."""

from __future__ import annotations

import pytest

from dsc.testing import FAST_AUGMENT, MASKED_CLASSES, masked_store, write_tokens


def _fails(res, *needles: str) -> None:
    assert res.code == 1, res
    assert "Error:" in res.err and "Traceback" not in res.err, res
    for needle in needles:
        assert needle in res.err, res


def test_class_without_token_file_lists_the_missing_classes(run_dsc, data_h5, tiny_sd, tmp_path):
    tokens = write_tokens(tmp_path / "T", tiny_sd, MASKED_CLASSES[:1])
    res = run_dsc("augment", data_h5, "--tokens", tokens, *FAST_AUGMENT, "-o", tmp_path / "a.h5")
    _fails(res, "no token for 2 classes: bolt, brake_caliper")
    assert not (tmp_path / "a.h5").exists() and not (tmp_path / "a.h5.partial").exists()


def test_token_dimension_mismatch(run_dsc, data_h5, tiny_sd, tmp_path):
    tokens = write_tokens(tmp_path / "T", tiny_sd, MASKED_CLASSES, dim=16)
    _fails(run_dsc("augment", data_h5, "--tokens", tokens, *FAST_AUGMENT, "-o", tmp_path / "a.h5"), "dimension")


def test_token_manifest_for_another_model(run_dsc, data_h5, tiny_sd, tmp_path):
    tokens = write_tokens(tmp_path / "T", tiny_sd, MASKED_CLASSES, fingerprint="0123456789abcdef")
    _fails(run_dsc("augment", data_h5, "--tokens", tokens, *FAST_AUGMENT, "-o", tmp_path / "a.h5"), "learned for model")


def test_dafusion_without_tokens(run_dsc, data_h5, tmp_path):
    _fails(run_dsc("augment", data_h5, *FAST_AUGMENT, "-o", tmp_path / "a.h5"), "--tokens", "real-guidance")


@pytest.mark.parametrize(("args", "needle"), [
    (["--strength", "1.5"], "strength must lie in (0, 1]"),
    (["--strength", "0"], "strength must lie in (0, 1]"),
    (["--strength", "0.1"], "runs no denoising step"),
    (["--strength", "0.5,1.0", "--strength-probs", "1.0"], "one probability per --strength"),
    (["--per-image", "0"], "per_image"),
    (["--resolution", "30"], "multiple of 8"),
    (["--classes", "gear,wheel"], "unknown class wheel"),
    (["--scheduler", "magic"], "unknown scheduler"),
])
def test_bad_values(run_dsc, data_h5, tmp_path, args, needle):
    res = run_dsc("augment", data_h5, "--strategy", "real-guidance", *FAST_AUGMENT, *args, "-o", tmp_path / "a.h5")
    _fails(res, needle)


def test_mask_object_needs_masks(run_dsc, tmp_path):
    data = masked_store(tmp_path / "nomask.h5", masks=False)
    res = run_dsc("augment", data, "--strategy", "real-guidance", "--mask", "object", *FAST_AUGMENT, "-o", tmp_path / "a.h5")
    _fails(res, "needs object masks")


def test_out_of_memory_suggests_a_smaller_batch(run_dsc, data_h5, tmp_path, monkeypatch):
    import torch

    import dsc.diffusion.generate as gen

    def boom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(gen, "generate", boom)
    res = run_dsc("augment", data_h5, "--strategy", "real-guidance", *FAST_AUGMENT, "-o", tmp_path / "a.h5")
    _fails(res, "out of memory", "smaller --batch-size (e.g. 1)", "--resume")


def test_existing_output_needs_force_or_resume(run_dsc, data_h5, tmp_path):
    (tmp_path / "a.h5").write_bytes(b"x")
    res = run_dsc("augment", data_h5, "--strategy", "real-guidance", *FAST_AUGMENT, "-o", tmp_path / "a.h5")
    _fails(res, "already exists", "--force")
    assert (tmp_path / "a.h5").read_bytes() == b"x"
