"""CLI start-up: `dsc --help` (and `dsc --version`, `dsc plugins`) against `python -c "import torch"`.

    python benchmarks/bench_startup.py [--quick] [--json FILE] [--repeat N]

Each command runs as a fresh subprocess (the cost a user pays on every call); the figure is the median
wall time over N runs after one warm-up run (so the OS file cache is warm for both). The target is
`dsc --help` in well under half of `import torch`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "dsc --help": [sys.executable, "-m", "dsc", "--help"],
    "dsc --version": [sys.executable, "-m", "dsc", "--version"],
    "dsc plugins": [sys.executable, "-m", "dsc", "plugins"],
    "python -c 'import torch' (baseline)": [sys.executable, "-c", "import torch"],
    "python -c 'pass' (interpreter)": [sys.executable, "-c", "pass"],
}
BASELINE = "python -c 'import torch' (baseline)"


def time_command(cmd: list[str], repeat: int) -> list[float]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    subprocess.run(cmd, capture_output=True, env=env, check=True)  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, env=env, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (about 15 s)")
    parser.add_argument("--repeat", type=int, default=None, help="runs per command (default 10, quick 3)")
    parser.add_argument("--json", type=Path, default=None, help="write the results to this file")
    args = parser.parse_args()
    repeat = args.repeat or (3 if args.quick else 10)

    results = {}
    for name, cmd in COMMANDS.items():
        times = time_command(cmd, repeat)
        results[name] = {"median_s": statistics.median(times), "min_s": min(times), "runs": len(times)}
    base = results[BASELINE]["median_s"]
    from dsc.console import out

    out.print(f"start-up, median of {repeat} runs (python {sys.version.split()[0]})")
    for name, r in results.items():
        r["ratio_to_torch_import"] = round(r["median_s"] / base, 3)
        out.print(f"  {name:<40} {r['median_s'] * 1000:8.0f} ms  (min {r['min_s'] * 1000:.0f} ms)  "
                  f"{r['ratio_to_torch_import']:.2f} x import torch", highlight=False)
    ratio = results["dsc --help"]["ratio_to_torch_import"]
    verdict = "OK" if ratio < 0.5 else "TOO SLOW"
    out.print(f"dsc --help / import torch = {ratio:.2f} (target < 0.5): {verdict}", highlight=False)
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "startup", "repeat": repeat, "results": results,
                                         "help_to_torch_ratio": ratio}, indent=2) + "\n")


if __name__ == "__main__":
    main()
