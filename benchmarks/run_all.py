"""Run every benchmark script in benchmarks/ and print one summary table.

    python benchmarks/run_all.py [--full] [--only NAME ...] [--json FILE]

Each ``bench_*.py`` measures dsc against its baseline in the same run and prints both; this runner
runs them one after another (``--quick`` unless ``--full``), shows their output, and ends with one table
of every ratio they reported. ``--json`` writes all results together.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent


def _ratios(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every (path, value) whose key mentions a ratio or speed-up, found recursively."""
    found: list[tuple[str, Any]] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, (int, float)) and any(w in str(key).lower() for w in ("ratio", "speedup")):
                found.append((path, value))
            else:
                found.extend(_ratios(value, path))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            label = value.get("name") or value.get("impl") or value.get("figure") or i if isinstance(
                value, dict) else i
            found.extend(_ratios(value, f"{prefix}[{label}]"))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-size runs instead of --quick")
    parser.add_argument("--only", nargs="*", default=None, help="benchmark names (e.g. loss subset)")
    parser.add_argument("--json", type=Path, default=None, help="write all results to this file")
    args = parser.parse_args()
    console = Console()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    results: dict[str, Any] = {}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for script in scripts:
            name = script.stem.removeprefix("bench_")
            out = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, str(script), "--json", str(out)] + ([] if args.full else ["--quick"])
            console.rule(f"[bold]{name}[/]  ({' '.join(cmd[1:])})")
            start = time.perf_counter()
            proc = subprocess.run(cmd, check=False)
            wall = time.perf_counter() - start
            data = json.loads(out.read_text()) if out.exists() else None
            results[name] = {"returncode": proc.returncode, "wall_s": round(wall, 1), "result": data}
            status = "ok" if proc.returncode == 0 else f"failed ({proc.returncode})"
            if isinstance(data, dict) and data.get("skipped"):
                status = f"skipped: {data['skipped']}"
            ratios = _ratios(data) if data is not None else []
            if not ratios:
                rows.append((name, status, f"{wall:.0f}", "-", "-"))
            for i, (path, value) in enumerate(ratios):
                rows.append((name if i == 0 else "", status if i == 0 else "", f"{wall:.0f}" if i == 0 else "",
                             path, f"{value:.2f}x" if isinstance(value, float) else str(value)))
    table = Table(title="dsc benchmarks (each ratio: dsc against its baseline, measured in the same run)",
                  title_justify="left")
    for col in ("benchmark", "status", "wall s", "figure", "ratio"):
        table.add_column(col, justify="right" if col in ("wall s", "ratio") else "left")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0 if all(r["returncode"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
