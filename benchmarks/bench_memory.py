"""Peak memory of real dsc commands at N and at 4N images: it must not grow with the dataset.

    python benchmarks/bench_memory.py [--quick] [--json FILE] [--only augment,pretrain,subset]

Each command runs as the real CLI (``python -m dsc ...``) in a fresh subprocess; its peak resident set size
(``ru_maxrss`` of that child, read by a small launcher process so a large parent does not leak into it) is read once at N and once at
4N input images, on tiny synthetic data:

- ``subset``: a folder tree of N PNG photos (4 classes, 96 px) made into a 64 px DATA.h5 (the ``folder``
  dataset: records are file paths, decoded in chunks). (The built-in toyparts dataset renders its images
  while listing, so there memory grows by about 65 kB per image by that plugin's design.)
- ``augment``: ``dsc augment --model tiny`` (random-weight tiny Stable Diffusion, 64 px) on a DATA.h5 of N
  source images, 2 variants each; images are written batch by batch, so memory must stay flat;
- ``pretrain``: ``dsc pretrain`` with timm's ``test_resnet`` at 32 px, one epoch. Training keeps the images of
  DATA.h5 in memory as uint8 at the training size (no decoding per epoch), so its peak may grow by that
  array and nothing else: the report subtracts it (``growth_beyond_data_mb``).

The baseline of each row is the same command at N; the ratio is peak(4N) / peak(N) (1.00 = flat).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CASES = ("subset", "augment", "pretrain")


def make_store(path: Path, n_train: int, n_val: int, res: int, classes: int = 4, seed: int = 0) -> Path:
    """A DATA.h5 of smooth random images (train and val rows), written with dsc's StoreWriter."""
    from dsc.store import StoreWriter

    rng = np.random.default_rng(seed)
    n = n_train + n_val
    names = [f"class{i}" for i in range(classes)]
    with StoreWriter(path, kind="data", force=True) as w:
        w.set_classes(names)
        w.create_column("images", (res, res, 3), np.uint8, chunk_rows=1)
        w.create_column("labels", (), np.int64)
        w.create_column("split", (), str)
        for start in range(0, n, 256):  # bounded memory for large N
            m = min(256, n - start)
            small = rng.integers(0, 255, (m, 8, 8, 3)).astype(np.uint8)
            images = small.repeat(res // 8, axis=1).repeat(res // 8, axis=2)
            rows = np.arange(start, start + m)
            w.append(images=images, labels=rows % classes,
                     split=["train" if r < n_train else "val" for r in rows])
        w.finalize()
    return path


def make_folder(root: Path, n: int, res: int, classes: int = 4, seed: int = 0) -> Path:
    """``root/<class>/<i>.png``: n smooth random photos spread over ``classes`` folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 255, (8, 8, 3)).astype(np.uint8)
        Image.fromarray(small.repeat(res // 8, axis=0).repeat(res // 8, axis=1)).save(folder / f"{i:05d}.png")
    return root


# A small launcher runs the command and reports its children's peak RSS. Measuring through a fresh, small
# process matters: a child forked straight from a large parent (pytest, a notebook) inherits the parent's
# resident pages until exec, and ru_maxrss would report the parent's size.
_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "rc = subprocess.call(sys.argv[1:])\n"
    "sys.stderr.write('\\nDSC_PEAK_RSS_KB=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(rc)\n"
)


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run ``cmd`` in a fresh process; its peak RSS (MB), wall seconds and exit code."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - start
    stderr = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr[-2000:]}")
    kb = int(stderr.rsplit("DSC_PEAK_RSS_KB=", 1)[1].split()[0])  # kilobytes on Linux
    return {"peak_rss_mb": round(kb / 1024, 1), "seconds": round(seconds, 2)}


def _dsc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dsc", "-q", *args]


def case_commands(case: str, tmp: Path, n: int, quick: bool) -> tuple[list[str], int, float]:
    """(command, images, MB of the in-memory data array the command keeps by design) for ``n`` images."""
    tag = f"{case}_{n}"
    if case == "subset":
        root = make_folder(tmp / f"{tag}_photos", n, 96)
        cmd = _dsc("subset", "--dataset", "folder", "--root", str(root), "--resolution", "64", "--seed", "0",
                   "-o", str(tmp / f"{tag}.h5"), "--force")
        return cmd, n, 0.0
    if case == "augment":
        data = make_store(tmp / f"{tag}_data.h5", n, 0, 64, classes=2)
        cmd = _dsc("augment", str(data), "-o", str(tmp / f"{tag}_aug.h5"), "--model", "tiny", "--strategy",
                   "real-guidance", "--per-image", "2", "--steps", "4" if quick else "10", "--strength", "0.5",
                   "--resolution", "64", "--batch-size", "8", "--device", "cpu", "--force")
        return cmd, 2 * n, 0.0
    if case == "pretrain":
        size = 32
        n_val = max(8, n // 8)
        data = make_store(tmp / f"{tag}_data.h5", n, n_val, 64)
        cmd = _dsc("pretrain", str(data), "-o", str(tmp / f"{tag}_run"), "--backbone", "timm:test_resnet",
                   "--image-size", str(size), "--epochs", "1", "--batch-size", "32", "--force")
        return cmd, n, (n + n_val) * size * size * 3 / 2**20
    raise ValueError(case)


def measure(cases: list[str], quick: bool) -> dict[str, Any]:
    # pretrain reads and resizes images in chunks of 512: N >= 512 shows the steady state
    sizes = {"subset": 96 if quick else 384, "augment": 8 if quick else 32, "pretrain": 512 if quick else 2048}
    results: dict[str, Any] = {"benchmark": "memory", "quick": quick,
                               "method": "ru_maxrss of a fresh `python -m dsc` subprocess (via a small launcher)",
                               "cases": {}}
    with tempfile.TemporaryDirectory(prefix="dsc-bench-memory-") as tmp_s:
        tmp = Path(tmp_s)
        env = {**os.environ, "DSC_CACHE_DIR": str(tmp / "cache"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
               "NO_COLOR": "1"}
        if "augment" in cases:  # build the tiny model once, outside the measurements
            subprocess.run([sys.executable, "-c", "from dsc.diffusion.tiny import tiny_model_path; "
                            "tiny_model_path()"], env=env, check=True, cwd=tmp)
        for case in cases:
            n = sizes[case]
            row: dict[str, Any] = {}
            for label, k in (("n", n), ("4n", 4 * n)):
                cmd, images, data_mb = case_commands(case, tmp, k, quick)
                r = run_measured(cmd, env, tmp)
                row[label] = {"images": images, **r, "in_memory_data_mb": round(data_mb, 2)}
                print(f"{case:<9} {images:6d} images: peak RSS {r['peak_rss_mb']:8.1f} MB  ({r['seconds']:.1f} s)",
                      flush=True)
            growth = row["4n"]["peak_rss_mb"] - row["n"]["peak_rss_mb"]
            data_growth = row["4n"]["in_memory_data_mb"] - row["n"]["in_memory_data_mb"]
            row.update({"growth_mb": round(growth, 1), "growth_beyond_data_mb": round(growth - data_growth, 1),
                        "ratio_4n_to_n": round(row["4n"]["peak_rss_mb"] / row["n"]["peak_rss_mb"], 3)})
            print(f"{case:<9} 4N / N = {row['ratio_4n_to_n']:.3f}  (growth {growth:+.1f} MB, "
                  f"{growth - data_growth:+.1f} MB beyond the in-memory image array)", flush=True)
            results["cases"][case] = row
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small N (about a minute)")
    ap.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    ap.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(CASES)}")
    args = ap.parse_args()
    cases = [c for c in (args.only.split(",") if args.only else CASES) if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        ap.error(f"unknown case(s) {unknown}; choose from {CASES}")
    results = measure(cases, args.quick)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
