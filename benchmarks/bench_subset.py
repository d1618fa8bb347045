"""`dsc subset` throughput on ../shared/data/carparts50 (50 classes scanned, 20 chosen, 224 px).

    python benchmarks/bench_subset.py [--quick] [--json FILE] [--data DIR] [--workers N]

Three ways to turn the same images into an HDF5 file, in the same run, on the same files:
- baseline: the plain script people write: a loop with PIL (open, convert RGB, resize to 224x224) and
  h5py (one gzip-compressed chunk per image, level 4), in one process;
- dsc subset --workers 1: the same work plus class choice, splits, masks-aware cropping, digests and
  provenance, in one process (compression of each chunk at level 1, written directly);
- dsc subset --workers N (default: one per core; repeat --workers for several N): decoding, resizing and
  compression in N processes.
Figures are images per second over decoding + writing (class scanning reported separately) and the
ratio to the baseline. The OS file cache is warmed first so all three read from memory. --quick caps
each class at 30 images (600 images). Skips cleanly when the data folder is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "carparts50"
CLASSES, RESOLUTION, SEED = 20, 224, 0


def baseline(files: list[Path], out: Path) -> float:
    """A plain PIL + h5py loop; returns seconds."""
    import h5py
    import numpy as np
    from PIL import Image

    start = time.perf_counter()
    with h5py.File(out, "w") as h5:
        ds = h5.create_dataset("images", (len(files), RESOLUTION, RESOLUTION, 3), np.uint8,
                               chunks=(1, RESOLUTION, RESOLUTION, 3), compression="gzip", compression_opts=4)
        for i, f in enumerate(files):
            im = Image.open(f).convert("RGB").resize((RESOLUTION, RESOLUTION), Image.Resampling.BICUBIC)
            ds[i] = np.asarray(im)
    return time.perf_counter() - start


def _settings(data: Path, workers: int, cap: int | None):
    from dsc.settings import SubsetSettings

    return SubsetSettings(dataset="folder", root=data, classes=CLASSES, resolution=RESOLUTION, seed=SEED,
                          workers=workers, max_per_class=cap, options={"split_from_prefix": True})


def chosen_files(data: Path, cap: int | None) -> list[Path]:
    """The image files `dsc subset` will convert (planning only, nothing decoded)."""
    from dsc.subset import open_dataset, plan_subset

    settings = _settings(data, 1, cap)
    return [Path(row.record.image) for row in plan_subset(open_dataset(settings), settings).rows]


def run_dsc(data: Path, out: Path, workers: int, cap: int | None):
    from dsc.subset import build_subset

    return build_subset(_settings(data, workers, cap), out, force=True, show_progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 images per class (about 600 images)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the carparts50 folder")
    parser.add_argument("--workers", type=int, action="append", default=None,
                        help="processes for a parallel run (repeatable; default: one per core)")
    parser.add_argument("--json", type=Path, default=None, help="write the results to this file")
    args = parser.parse_args()
    from dsc.console import out

    if not args.data.is_dir():
        out.print(f"skipped: {args.data} not found (benchmark data is optional)")
        if args.json:
            args.json.write_text(json.dumps({"benchmark": "subset", "skipped": f"{args.data} not found"}) + "\n")
        return
    cap = 30 if args.quick else None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers_list = args.workers or [cores]
    with tempfile.TemporaryDirectory(prefix="dsc-bench-subset-") as tmp:
        tmpdir = Path(tmp)
        files = chosen_files(args.data, cap)  # the baseline converts exactly the files dsc chooses
        for f in files:  # warm the file cache for everyone
            f.read_bytes()
        base_s = baseline(files, tmpdir / "baseline.h5")
        runs = {w: run_dsc(args.data, tmpdir / f"w{w}.h5", w, cap) for w in [1, *workers_list]}
        sizes = {w: (tmpdir / f"w{w}.h5").stat().st_size for w in runs}
        base_size = (tmpdir / "baseline.h5").stat().st_size
    n = len(files)
    serial = runs[1]
    rows = {"baseline (PIL + h5py loop)": {"seconds": base_s, "images_per_s": n / base_s, "bytes": base_size}}
    for w, res in runs.items():
        rows[f"dsc subset --workers {w}"] = {"seconds": res.timings["decode_write"],
                                             "images_per_s": n / res.timings["decode_write"],
                                             "scan_s": res.timings["scan"], "bytes": sizes[w]}
    base_rate = rows["baseline (PIL + h5py loop)"]["images_per_s"]
    scanned = serial.summary["scanned"]
    out.print(f"subset of {args.data.name}: {scanned['classes_listed']} classes listed, {scanned['classes']} read, "
              f"{CLASSES} chosen, {n} images at {RESOLUTION} px ({cores} cores; python {sys.version.split()[0]})",
              highlight=False)
    for name, r in rows.items():
        r["ratio_to_baseline"] = round(r["images_per_s"] / base_rate, 2)
        scan = f", scan {r['scan_s']:.2f} s" if "scan_s" in r else ""
        out.print(f"  {name:<30} {r['images_per_s']:8.1f} img/s  {r['seconds']:7.2f} s  "
                  f"{r['bytes'] / 2**20:6.1f} MiB  {r['ratio_to_baseline']:.2f} x baseline{scan}", highlight=False)
    same = len({r.fingerprint for r in runs.values()}) == 1
    out.print(f"serial and parallel stores identical (fingerprint): {same}", highlight=False)
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "subset", "data": str(args.data), "images": n,
                                         "classes": CLASSES, "resolution": RESOLUTION, "cores": cores,
                                         "workers": workers_list, "quick": args.quick, "results": rows,
                                         "identical": same}, indent=2) + "\n")


if __name__ == "__main__":
    main()
