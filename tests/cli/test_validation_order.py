"""Inputs are checked before anything costly: paths before torch is imported, plugin names before any data
is read, and every input of a study before any run (issue 12)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_study import inputs, write_study  # noqa: F401 - the fixture is used by name

HEAVY = ("torch", "timm", "h5py", "diffusers")


@pytest.mark.parametrize("args", [
    ["pretrain", "missing.h5", "-o", "runs/x"],
    ["baseline", "missing.h5", "-o", "runs/x"],
    ["probe", "runs/none"],
    ["invert", "missing.h5", "-o", "tokens"],
    ["augment", "missing.h5", "-o", "aug.h5"],
])
def test_a_missing_input_fails_before_torch_is_imported(tmp_path: Path, args: list[str]) -> None:
    code = ("import sys; from dsc.cli.main import main\n"
            f"try: main({args!r})\n"
            "except SystemExit as exc: print('rc', exc.code)\n"
            f"print('heavy', [m for m in {HEAVY!r} if m in sys.modules])\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "rc 1" in res.stdout, res
    assert "heavy []" in res.stdout, res
    assert "does not exist" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "runs").exists()


def test_a_missing_synthetic_store_is_named(run_dsc, tmp_path: Path) -> None:
    (tmp_path / "data.h5").write_bytes(b"")
    res = run_dsc("pretrain", "data.h5", "--synthetic", "nope.h5", "-o", "run")
    assert res.code == 1 and "--synthetic nope.h5 does not exist" in res.err and "dsc augment" in res.err


@pytest.mark.parametrize("command", ["pretrain", "baseline"])
@pytest.mark.parametrize("backbone, message", [
    ("timmm:resnet18", "unknown backbone plugin 'timmm'"),
    ("timm:resnt18", "unknown timm model 'resnt18'"),
    ("hf-hub:timm/not-cached.x", "not in the local Hugging Face cache"),
])
def test_a_bad_backbone_fails_before_the_store_is_read(run_dsc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       command: str, backbone: str, message: str) -> None:
    import huggingface_hub.constants

    from dsc.store import reader

    def refuse(*args, **kwargs):
        raise AssertionError("the store was read before the backbone was checked")

    monkeypatch.setattr(reader.Store, "__init__", refuse)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    (tmp_path / "data.h5").write_bytes(b"")  # never opened
    (tmp_path / "runs").mkdir()
    res = run_dsc(command, "data.h5", "--backbone", backbone, "-o", tmp_path / "runs" / "x")
    assert res.code == 1, res
    assert message in res.err and "unexpected" not in res.err
    assert list((tmp_path / "runs").iterdir()) == []


def test_study_checks_eval_ood_before_anything_runs(run_dsc, tmp_path: Path, inputs) -> None:  # noqa: F811
    """An eval_ood store made from training images was refused only by the probe, after training."""
    path = write_study(tmp_path, inputs, study_extra=f'eval_ood = ["{inputs["ood"]}"]')
    res = run_dsc("study", path, "--dry-run")
    assert res.code == 1, res
    assert "eval_ood" in res.err and "generated from training images" in res.err
    assert not (tmp_path / "out").exists()


def test_study_checks_the_role_of_each_store_in_a_dry_run(run_dsc, tmp_path: Path, inputs) -> None:  # noqa: F811
    swapped = {**inputs, "ood": inputs["normal"]}  # a normal store listed as OOD negatives
    res = run_dsc("study", write_study(tmp_path, swapped), "--dry-run")
    assert res.code == 1, res
    assert "has no OOD rows" in res.err


def test_study_checks_every_backbone_in_a_dry_run(run_dsc, tmp_path: Path, inputs) -> None:  # noqa: F811
    path = write_study(tmp_path, inputs, "[pretrain]\nbackbone = \"timm:resnt18\"\n")
    res = run_dsc("study", path, "--dry-run")
    assert res.code == 1 and "unknown timm model 'resnt18'" in res.err, res
