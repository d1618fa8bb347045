"""benchmarks/gpu_check.sh and gpu_check.py on a machine without CUDA: a clean skip (exit 0, JSON note), and
the --dry-run path (tiny models on the CPU) through generation, fp32/bf16 finiteness and pretraining."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"



def _no_cuda() -> bool:
    import torch

    return not torch.cuda.is_available()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_shell_script_skips_cleanly_without_cuda(tmp_path: Path) -> None:
    if not _no_cuda():
        pytest.skip("a CUDA device is present: the script would run the real check")
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(SCRIPT), "--quick"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "skipped: no CUDA device" in proc.stdout
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert data["status"] == "skipped" and "CUDA" in data["skipped"]


def test_python_part_skips_without_cuda_and_modes_fit(tmp_path: Path) -> None:
    gc = load_script("gpu_check")
    quick, full = gc.parse(["--quick"]), gc.parse([])
    assert quick.batches == [1, 8] and full.batches == [1, 8, 16]
    assert quick.resolution == full.resolution == 512 and quick.image_size == 224
    assert quick.backbone == full.backbone == "timm:resnet50"
    assert quick.budget < 90 and full.budget < 480
    assert gc.SD15_UNET["block_out_channels"] == (320, 640, 1280, 1280)
    assert gc.SD15_UNET["cross_attention_dim"] == 768 and gc.CLIP_L["num_hidden_layers"] == 12
    if _no_cuda():
        assert gc.main(["--quick", "--out", str(tmp_path)]) == 0
        assert json.loads((tmp_path / "gpu_check.json").read_text())["status"] == "skipped"


def test_report_is_rewritten_after_every_step(tmp_path: Path) -> None:
    gc = load_script("gpu_check")
    report = gc.Report(tmp_path, "quick")
    assert json.loads(report.path.read_text())["status"] == "running"
    report.step("generate", {"dtypes": {}})
    report.check("x", False, "detail")
    data = json.loads(report.path.read_text())
    assert data["steps"]["generate"] == {"dtypes": {}} and data["checks"]["x"]["ok"] is False


@pytest.mark.slow
def test_dry_run_exercises_every_step(tmp_path: Path) -> None:
    """The whole check on the CPU with tiny models: generation (fp32 and bf16, dsc batched vs stock one per
    call), finiteness checks, pretraining through dsc's engine; fp32 dsc images equal the stock pipeline's."""
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    venv = ROOT / ".venv" / "bin" / "python"
    if venv.exists() and venv.parent.parent.resolve() == Path(sys.prefix).resolve():
        del env["PYTHON"]  # the script's own choice of interpreter (.venv, used from another folder too)
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run"], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert data["status"] == "ok" and data["mode"] == "dry-run" and not data["errors"]
    gen = data["steps"]["generate"]["dtypes"]
    assert set(gen) == {"float32", "bfloat16"}
    assert set(gen["float32"]["batches"]) == {"1", "2"}
    assert gen["float32"]["batches"]["2"]["ratio_to_one_per_call"] > 0
    assert gen["float32"]["mean_abs_diff_dsc_vs_stock_uint8"] < 0.5  # dsc's core is the stock pipeline, batched
    assert all(c["ok"] for c in data["checks"].values())
    assert data["steps"]["pretrain"]["runs"]["amp_channels_last"]["images_per_s_last_epoch"] > 0
    assert "skipped" in data["steps"]["multi_gpu"]
    assert (tmp_path / "gpu_check.log").read_text().count("[gpu_check") >= 5
