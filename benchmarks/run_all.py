"""Run every benchmark script in benchmarks/ and print one table: each figure, its baseline, the ratio.

    python benchmarks/run_all.py [--full] [--only NAME ...] [--skip NAME ...] [--json FILE] [--markdown]
    python benchmarks/run_all.py --from-json FILE [--markdown]     # render a saved run again

Each ``bench_*.py`` measures dsc against its baseline in the same run and writes its own JSON (``--json``);
this runner runs them one after another (``--quick`` unless ``--full``), shows their output, normalises their
heterogeneous JSON into rows ``{benchmark, figure, dsc, baseline, unit, ratio, better}`` (``ratio`` is always
dsc / baseline in the row's unit; ``better`` says which direction is good: higher, lower, or ``flat`` for
memory at 4N against N, where 1.00 means memory does not grow with the dataset) and prints one table.
``--json`` writes the rows and every script's raw result together.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

Row = dict[str, Any]


def row(benchmark: str, figure: str, dsc: Any, baseline: Any, unit: str, better: str, scale: float = 1.0) -> Row:
    """One normalised figure; ``scale`` converts both values to ``unit`` (e.g. 1000 for s -> ms)."""
    d = float(dsc) * scale if dsc is not None else None
    b = float(baseline) * scale if baseline is not None else None
    ratio = d / b if d is not None and b else None
    return {"benchmark": benchmark, "figure": figure, "dsc": d, "baseline": b, "unit": unit,
            "ratio": ratio, "better": better, "gain": gain(ratio, better)}


def gain(ratio: float | None, better: str) -> str:
    """The ratio read in dsc's favour: '5.5x faster', '3.1x less', or memory growth at 4N for 'flat'."""
    if ratio is None or ratio <= 0:
        return "-"
    if better == "higher":
        return f"{ratio:.2f}x"
    if better == "lower":
        return f"{1 / ratio:.2f}x"
    return f"{100 * (ratio - 1):+.1f}%"


# ----------------------------------------------------------------------- one adapter per script's JSON shape
def _startup(d: dict) -> list[Row]:
    res = d["results"]
    base_key = next(k for k in res if "baseline" in k)
    return [row("startup", f"`{k}` start-up vs `import torch`", v["median_s"], res[base_key]["median_s"], "ms",
                "lower", 1000) for k, v in res.items() if k.startswith("dsc")]


def _subset(d: dict) -> list[Row]:
    res = d["results"]
    base_key = next(k for k in res if "baseline" in k)
    base = res[base_key]["images_per_s"]
    n = d.get("images")
    return [row("subset", f"`{k}` vs PIL + h5py loop ({n} images)", v["images_per_s"], base, "images/s", "higher")
            for k, v in res.items() if k != base_key]


def _invert(d: dict) -> list[Row]:
    ours, naive = d["dsc"], d["naive_reencode"]
    steps = d.get("steps")
    return [
        row("invert", f"inversion steps/s, {steps} steps incl. one-off encode, vs VAE every step",
            ours["steps_per_s"], naive["steps_per_s"], "steps/s", "higher"),
        row("invert", "inversion steps/s per step (long runs) vs VAE every step",
            ours["steps_per_s_excluding_encode"], naive["steps_per_s"], "steps/s", "higher"),
    ] + ([
        row("invert", f"`invert --method lora` steps/s, {steps} steps incl. one-off encode, vs VAE every step",
            d["lora"]["dsc"]["steps_per_s"], d["lora"]["naive_reencode"]["steps_per_s"], "steps/s", "higher"),
        row("invert", "`invert --method lora` steps/s per step (long runs) vs VAE every step",
            d["lora"]["dsc"]["steps_per_s_excluding_encode"], d["lora"]["naive_reencode"]["steps_per_s"],
            "steps/s", "higher"),
    ] if "lora" in d else [])


def _augment(d: dict) -> list[Row]:
    rows = [row("augment", f"generation ({d.get('images')} images) vs one stock pipeline call per image",
                d["dsc_images_per_second"], d["dafusion_pattern_images_per_second"], "images/s", "higher")]
    if "peak_rss_mb_after_4n" in d:
        rows.append(row("augment", "peak RSS of the process after 4N vs after N images",
                        d["peak_rss_mb_after_4n"], d["peak_rss_mb_after_n"], "MB", "flat"))
    for name, r in (d.get("strategies") or {}).items():  # diff-mix, text-to-image vs their own stock pipeline
        rows.append(row("augment", f"--strategy {name} ({r['images']} images) vs one stock pipeline call per image",
                        r["dsc_images_per_second"], r["stock_pattern_images_per_second"], "images/s", "higher"))
    return rows


def _loss(d: dict) -> list[Row]:
    impls = d["impls"]
    ours = impls["dsc"]
    shape = f"B={d.get('batch')} V={d.get('views')}"
    rows = []
    for other, label in (("reference", "SupContrast reference"), ("pytorch-metric-learning", "pytorch-metric-learning")):
        if other not in impls:
            continue
        rows.append(row("loss", f"SupCon fwd+bwd time ({shape}) vs {label}", ours["seconds"], impls[other]["seconds"],
                        "ms", "lower", 1000))
        if ours.get("peak_bytes") and impls[other].get("peak_bytes"):
            rows.append(row("loss", f"SupCon peak memory vs {label}", ours["peak_bytes"], impls[other]["peak_bytes"],
                            "MiB", "lower", 1 / 2**20))
    return rows


def _pretrain(d: dict) -> list[Row]:
    return [row("pretrain", f"training images/s, {model} vs SupContrast-style loop",
                v["dsc"]["images_per_s"], v["supcontrast_style"]["images_per_s"], "images/s", "higher")
            for model, v in d["models"].items()]


def _probe(d: dict) -> list[Row]:
    res = d["results"]
    return [row("probe", f"linear probe time ({d.get('backbone')}, {d.get('epochs')} epochs) vs encoder every epoch",
                res["dsc"]["seconds"], res["baseline"]["seconds"], "s", "lower")]


def _memory(d: dict) -> list[Row]:
    return [row("memory", f"`dsc {case}` peak RSS at 4N={c['4n']['images']} vs N={c['n']['images']} images",
                c["4n"]["peak_rss_mb"], c["n"]["peak_rss_mb"], "MB", "flat")
            for case, c in d["cases"].items()]


def _learning(d: dict) -> list[Row]:
    s = d["settings"]
    budget = f"{s['steps']} steps, {len(s['seeds'])} seed(s)"
    rows = []
    for name, res in d["datasets"].items():
        for arm, other, metric, label in (("supcon", "reference", "probe_top1", "SupCon+probe test top-1"),
                                          ("ce", "torchvision", "test_top1", "CE test top-1")):
            if arm in res:
                ours, base = res[arm]["dsc"]["summary"][metric], res[arm][other]["summary"][metric]
                what = "SupContrast-style loop" if arm == "supcon" else "torchvision loop"
                rows.append(row("learning", f"{label}, {name} ({budget}) vs {what}", ours["mean"], base["mean"],
                                "% top-1", "higher", 100))
    return rows


def _threads(d: dict) -> list[Row]:
    s, best = d["summary"], d["best"]
    used = ",".join(str(n) for n in s["default"]["threads_used"])
    where = f"{d.get('cores')} cores, load {d.get('load_before')}"
    rows = [row("threads", f"`dsc pretrain` images/s, default threads (chose {used}) vs the best setting ({best}), "
                f"{where} (goal: ratio >= 0.85)", s["default"]["images_per_s"], s[best]["images_per_s"],
                "images/s", "higher")]
    every = d.get("all_cores")
    if every in s and every != best:
        rows.append(row("threads", f"`dsc pretrain` images/s, default threads vs one per core ({every}, torch's "
                        f"default), {where}", s["default"]["images_per_s"], s[every]["images_per_s"], "images/s",
                        "higher"))
    return rows


ADAPTERS: dict[str, Callable[[dict], list[Row]]] = {
    "startup": _startup, "subset": _subset, "invert": _invert, "augment": _augment, "loss": _loss,
    "pretrain": _pretrain, "probe": _probe, "memory": _memory, "learning": _learning, "threads": _threads,
}


def _generic(name: str, obj: Any, prefix: str = "") -> list[Row]:
    """Scripts without an adapter: every numeric value whose key mentions a ratio or a speed-up."""
    found: list[Row] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, (int, float)) and any(w in str(key).lower() for w in ("ratio", "speedup")):
                found.append({"benchmark": name, "figure": path, "dsc": None, "baseline": None, "unit": "",
                              "ratio": float(value), "better": "higher", "gain": gain(float(value), "higher")})
            else:
                found.extend(_generic(name, value, path))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found.extend(_generic(name, value, f"{prefix}[{i}]"))
    return found


def normalise(name: str, data: Any) -> list[Row]:
    """Rows of one script's JSON (its adapter, else the generic ratio scan); [] when skipped or missing."""
    if not isinstance(data, dict) or data.get("skipped"):
        return []
    adapter = ADAPTERS.get(name)
    if adapter is not None:
        try:
            return adapter(data)
        except (KeyError, TypeError, ValueError, StopIteration, AttributeError, ZeroDivisionError):
            pass  # the script changed its shape: fall back rather than lose the figures
    return _generic(name, data)


# ------------------------------------------------------------------------------------------------ output
def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "0"
    mag = abs(x)
    return f"{x:.0f}" if mag >= 100 else f"{x:.1f}" if mag >= 10 else f"{x:.2f}" if mag >= 0.1 else f"{x:.3g}"


def table_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    out = []
    for name, r in results["benchmarks"].items():
        rows = [x for x in results["rows"] if x["benchmark"] == name]
        status = r["status"]
        if not rows:
            out.append((name, status, "-", "-", "-", "-", "-", "-"))
        for x in rows:
            ratio = f"{x['ratio']:.2f}x" if x["ratio"] is not None else "-"
            out.append((name, x["figure"], _num(x["dsc"]), _num(x["baseline"]), x["unit"], ratio, x["better"],
                        x.get("gain") or gain(x["ratio"], x["better"])))
    return out


HEADER = ("benchmark", "figure", "dsc", "baseline", "unit", "dsc / baseline", "better", "dsc's gain")


def print_table(results: dict[str, Any], markdown: bool) -> None:
    rows = table_rows(results)
    if markdown:
        print("| " + " | ".join(HEADER) + " |")
        print("|" + "|".join(" --- " if i in (0, 1, 4, 6) else " ---: " for i in range(len(HEADER))) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="dsc benchmarks: each figure against its baseline, measured in the same run "
                        f"({'full' if results.get('full') else 'quick'}; ratio = dsc / baseline; "
                        "gain: how many times better, or memory growth at 4N)", title_justify="left")
    for col in HEADER:
        table.add_column(col, justify="right" if col in ("dsc", "baseline", "dsc / baseline", "dsc's gain")
                         else "left")
    for r in rows:
        table.add_row(*r)
    console = Console() if sys.stdout.isatty() else Console(width=180)  # logs: no wrapped figures
    console.print(table)
    walls = ", ".join(f"{n} {r['wall_s']:.0f} s" for n, r in results["benchmarks"].items())
    console.print(f"wall time: {walls}; total {sum(r['wall_s'] for r in results['benchmarks'].values()):.0f} s",
                    highlight=False)


def run_scripts(names: list[str], full: bool, timeout: float, folder: Path = HERE) -> dict[str, Any]:
    """Run ``folder/bench_<name>.py --json F [--quick]`` for each name; results with normalised rows."""
    from rich.console import Console

    console = Console()
    results: dict[str, Any] = {"schema": "dsc-bench/1", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "full": full, "host": {"python": platform.python_version(),
                                                      "machine": platform.machine(), "cpus": os.cpu_count()},
                               "benchmarks": {}, "rows": []}
    try:
        import torch

        results["host"]["torch"] = torch.__version__
        results["host"]["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="dsc-bench-") as tmp:
        for name in names:
            script = folder / f"bench_{name}.py"
            out = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, str(script), "--json", str(out)] + ([] if full else ["--quick"])
            console.rule(f"[bold]{name}[/]  ({' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd[1:]))})")
            start = time.perf_counter()
            try:
                code = subprocess.run(cmd, check=False, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                code = -1
            wall = time.perf_counter() - start
            data = None
            if out.exists():
                try:
                    data = json.loads(out.read_text())
                except json.JSONDecodeError:
                    data = None
            status = "ok" if code == 0 else "timed out" if code == -1 else f"failed ({code})"
            if isinstance(data, dict) and data.get("skipped"):
                status = f"skipped: {data['skipped']}"
            elif code == 0 and data is None:
                status = "skipped (no JSON written)"
            results["benchmarks"][name] = {"returncode": code, "wall_s": round(wall, 1), "status": status,
                                           "result": data}
            results["rows"].extend(normalise(name, data))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-size runs instead of --quick")
    parser.add_argument("--only", nargs="*", default=None, help="benchmark names (e.g. loss subset)")
    parser.add_argument("--skip", nargs="*", default=None, help="benchmark names to leave out")
    parser.add_argument("--json", type=Path, default=None, help="write rows and raw results to this file")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--from-json", type=Path, default=None, help="render a saved --json file, run nothing")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per script (quick 900, full 3600)")
    args = parser.parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        results["rows"] = [r for n, b in results["benchmarks"].items() for r in normalise(n, b.get("result"))]
        print_table(results, args.markdown)
        return 0
    names = sorted(s.stem.removeprefix("bench_") for s in HERE.glob("bench_*.py"))
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error(f"unknown benchmark(s) {unknown}; available: {', '.join(names)}")
        names = [n for n in names if n in args.only]
    if args.skip:
        names = [n for n in names if n not in args.skip]
    results = run_scripts(names, args.full, args.timeout or (3600 if args.full else 900))
    print_table(results, args.markdown)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    failed = [n for n, r in results["benchmarks"].items() if r["returncode"] != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
