"""A refused or failed command leaves nothing behind; --resume on a finished run changes nothing; the recorded
command line is the one the user typed (issue 12)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from dsc import outputs
from dsc.testing import pattern_store, synthetic_store

TINY = ["--backbone", "timm:test_resnet", "--image-size", "16", "--batch-size", "8", "--epochs", "1"]


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, Path]:
    data = pattern_store(tmp_path / "data.h5")
    return {"data": data, "normal": synthetic_store(tmp_path / "aug.h5", data, ood=False),
            "ood": synthetic_store(tmp_path / "aug-ood.h5", data, ood=True)}


# ------------------------------------------------------------------------------------- the mechanism
def test_only_created_folders_without_work_are_removed(tmp_path: Path) -> None:
    outputs.forget_claims()
    mine, with_plan, with_work = tmp_path / "new", tmp_path / "new.shards", tmp_path / "made"
    users = tmp_path / "users"
    users.mkdir()
    for path in (mine, with_plan, with_work, users):
        outputs.claim(path)
    mine.mkdir()
    (mine / "checkpoints").mkdir()
    with_plan.mkdir()
    (with_plan / "plan.json").write_text("{}")
    with_work.mkdir()
    (with_work / "tokens.json").write_text("{}")
    (with_work / "gear.safetensors").write_bytes(b"x")
    removed = outputs.discard_unused()
    assert set(removed) == {mine, with_plan}
    assert not mine.exists() and not with_plan.exists()
    assert with_work.is_dir() and users.is_dir()  # work, and a folder that existed before, are kept
    assert outputs.discard_unused() == []


# ------------------------------------------------------------------------------------------ commands
@pytest.mark.parametrize("role", ["--negatives", "--synthetic"])
def test_a_store_in_the_wrong_role_leaves_no_run_folder(run_dsc, tmp_path: Path, stores, role: str) -> None:
    """Refused after the run folder was made (while loading the data): the folder goes, so the corrected
    command is not refused because of it."""
    (tmp_path / "runs").mkdir()
    wrong = stores["normal"] if role == "--negatives" else stores["ood"]
    res = run_dsc("pretrain", stores["data"], role, wrong, *TINY, "-o", tmp_path / "runs" / "x")
    assert res.code == 1 and "rows to use as " + role in res.err, res
    assert list((tmp_path / "runs").iterdir()) == []


def test_invert_with_a_missing_model_leaves_no_token_folder(run_dsc, tmp_path: Path, stores) -> None:
    res = run_dsc("invert", stores["data"], "--model", str(tmp_path / "no-such-model"), "-o", tmp_path / "tokens")
    assert res.code == 1, res
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aug-ood.h5", "aug.h5", "data.h5"]


def test_a_failed_command_keeps_a_folder_that_existed(run_dsc, tmp_path: Path, stores) -> None:
    out = tmp_path / "runs" / "x"
    out.mkdir(parents=True)  # the user's (empty) folder, not made by dsc
    res = run_dsc("pretrain", stores["data"], "--negatives", stores["normal"], *TINY, "-o", out, "--force")
    assert res.code == 1, res
    assert out.is_dir()


# ---------------------------------------------------------------------------------- resume when done
def test_resume_of_a_finished_baseline_changes_nothing(run_dsc, tmp_path: Path, stores) -> None:
    run = tmp_path / "run"
    res = run_dsc("baseline", stores["data"], *TINY, "--no-corruptions", "-o", run)
    assert res.code == 0, res
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.rglob("*") if p.is_file()}
    res = run_dsc("baseline", stores["data"], *TINY, "--no-corruptions", "-o", run, "--resume")
    assert res.code == 0, res
    assert "already complete" in res.out and len(res.out.strip().splitlines()) == 1
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.rglob("*") if p.is_file()}
    assert after == before
    assert json.loads((run / "run.json").read_text())["timings"]["train"] > 0


# ----------------------------------------------------------------------------------- command line
def test_the_recorded_command_is_what_the_user_typed(run_dsc, tmp_path: Path) -> None:
    from dsc.store import Store

    args = ["subset", "--dataset", "toyparts", "--option", "objects_per_class=2", "--option", "num_classes=2",
            "--option", "image_size=32", "--resolution", "32", "--workers", "1", "--output", "my data.h5"]
    res = run_dsc(*args)
    assert res.code == 0, res
    command = Store(tmp_path / "my data.h5").attrs["command"]
    assert command == shlex.join(["dsc", *args])
    assert "<function" not in command
    info = run_dsc("info", "my data.h5")
    assert "build-subset" not in info.out and "'my data.h5'" in info.out
