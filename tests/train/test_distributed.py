from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("budget", [[], ["--steps", "5"]])
def test_two_process_gloo_pretrain(stores, tmp_path, budget):
    """Two CPU processes (gloo) under torchrun, the launcher `accelerate launch --multi_gpu` uses on GPUs;
    with an epochs budget and with a steps budget (full batches of 6 positives + 6 negatives)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_RANK"))}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
           str(_free_port()), "-m", "dsc", "pretrain", str(stores["data"]), "--negatives", str(stores["ood"]),
           "--backbone", "timm:test_resnet", "--image-size", "16", "--batch-size", "12", "--epochs", "2",
           "--ood-policy", "hard", "-o", str(tmp_path / "run"), *budget]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "complete" and info["batch"]["processes"] == 2
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["loss"] == r["loss"] for r in rows)
    assert proc.stdout.count("complete") == 1  # only the main process reports
    assert (tmp_path / "run" / "checkpoints" / "best.safetensors").is_file()
    assert info["optimizer_steps"] == rows[-1]["step"] == (5 if budget else 2 * 3)
    assert info["images_seen"] == rows[-1]["images_seen"] == (5 * 12 if budget else 2 * 36)


@pytest.mark.slow
@pytest.mark.parametrize("command, key", [("pretrain", "mixed_left_out_seen"), ("baseline", "soft_images_seen")])
def test_two_process_mixed_images_counted_over_both(stores, mixed, tmp_path, command, key):
    """Mixed (diff-mix) images under torchrun: each process counts its slice of the global batches and the
    round's counts are summed over the processes, so they equal a one-process run's."""
    from dsc.settings import BaselineSettings, PretrainSettings
    from dsc.train.baseline import baseline
    from dsc.train.pretrain import pretrain

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_RANK"))}
    env["OMP_NUM_THREADS"] = "1"
    extra = ["--no-corruptions"] if command == "baseline" else ["--mix-label", "dominant"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
           str(_free_port()), "-m", "dsc", command, str(stores["data"]), "--synthetic", str(mixed),
           "--backbone", "timm:test_resnet", "--image-size", "16", "--batch-size", "12", "--epochs", "2",
           *extra, "-o", str(tmp_path / "run")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    tiny = dict(backbone="timm:test_resnet", image_size=16, batch_size=12, epochs=2)
    one = baseline(stores["data"], tmp_path / "one", BaselineSettings(**tiny, corruptions=False),
                   synthetic=[mixed]) if command == "baseline" else \
        pretrain(stores["data"], tmp_path / "one", PretrainSettings(**tiny), synthetic=[mixed])
    assert [r[key] for r in rows] == [r[key] for r in one.metrics] and all(r[key] > 0 for r in rows)
