"""Loss forward+backward: dsc.losses.SupConLoss against the SupContrast reference formula and
pytorch-metric-learning's SupConLoss, measured in the same run.

    python benchmarks/bench_loss.py [--quick] [--json FILE] [--batch 1024 --views 2 --dim 128]

Time: median wall time of forward+backward over repeated rounds (after a warm-up round; the losses
take turns within a round), same inputs, same threads. Peak memory: each loss runs in a fresh subprocess with glibc's mmap threshold fixed at 128 KiB
(``MALLOC_MMAP_THRESHOLD_``), so every large tensor is its own mapping, returned to the system when freed;
after a warm-up run the process's high-water mark is reset (``/proc/self/clear_refs``) and the peak is
the growth of resident memory (``VmHWM`` minus ``VmRSS`` before) during one forward+backward: saved
tensors, masks, temporaries and gradients. (tracemalloc does not see torch's allocations; torch's CPU
profiler attributes allocations to ops without a usable timeline.) Linux only; skipped elsewhere.
With ``--device cuda`` the peak is the growth of ``torch.cuda.max_memory_allocated()`` instead.
The three losses are checked to agree before timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dsc.console import out
from dsc.losses import SupConLoss

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def supcontrast_reference(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """The SupContrast formula: float masks, max-subtraction, explicit exp and log over the full matrix
    (averaged over anchors with a positive, which at these sizes is every anchor)."""
    bsz, views, _ = features.shape
    features = torch.nn.functional.normalize(features, dim=-1)
    contrast = torch.cat(torch.unbind(features, dim=1), dim=0)
    mask = torch.eq(labels.view(-1, 1), labels.view(1, -1)).float().repeat(views, views)
    logits = torch.div(contrast @ contrast.T, temperature)
    logits_max, _ = torch.max(logits, dim=1, keepdim=True)
    logits = logits - logits_max.detach()
    logits_mask = torch.ones_like(mask) - torch.eye(bsz * views, dtype=mask.dtype, device=mask.device)
    mask = mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    pos = mask.sum(1)
    valid = pos > 0
    return -((mask * log_prob).sum(1)[valid] / pos[valid]).mean()


def pml_loss(temperature: float = 0.1) -> LossFn:
    from pytorch_metric_learning.losses import SupConLoss as PmlSupConLoss

    pml = PmlSupConLoss(temperature=temperature)

    def run(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        bsz, views, dim = features.shape
        return pml(features.transpose(0, 1).reshape(bsz * views, dim), labels.repeat(views))

    return run


def time_fwd_bwd(impls: dict[str, LossFn], features: torch.Tensor, labels: torch.Tensor,
                 repeats: int) -> dict[str, float]:
    """Median seconds of one forward+backward per loss. The losses take turns within each round, so a
    change of machine load affects all of them alike; round 0 is a warm-up."""
    times: dict[str, list[float]] = {name: [] for name in impls}
    for i in range(repeats + 1):
        for name, fn in impls.items():
            x = features.detach().clone().requires_grad_(True)
            _sync(x)
            start = time.perf_counter()
            fn(x, labels).backward()
            _sync(x)
            if i:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _sync(x: torch.Tensor) -> None:
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)


def cuda_peak_bytes(fn: LossFn, features: torch.Tensor, labels: torch.Tensor) -> int:
    """On a GPU: peak of torch's allocated memory during one forward+backward, above what was allocated before."""
    x = features.detach().clone().requires_grad_(True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn(x, labels).backward()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def _status_bytes(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith(key + ":"))
    return int(line.split()[1]) * 1024


def _child_peak(fn: LossFn, features: torch.Tensor, labels: torch.Tensor) -> int:
    """In this (fresh) process: resident-memory growth during one forward+backward, after a warm-up."""
    import gc

    x = features.detach().clone().requires_grad_(True)
    fn(x, labels).backward()
    x.grad = None
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark VmHWM to VmRSS
    before = _status_bytes("VmRSS")
    fn(x, labels).backward()
    return _status_bytes("VmHWM") - before


def peak_bytes(name: str, argv: list[str]) -> int | None:
    """Peak memory of one loss, measured in a fresh subprocess (see the module docstring)."""
    import os
    import subprocess
    import sys

    if not Path("/proc/self/clear_refs").exists():
        return None
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    cmd = [sys.executable, __file__, *argv, "--memory-child", name]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return int(json.loads(result.stdout.strip().splitlines()[-1])["peak_bytes"])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (under a minute)")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per loss (default 10, quick 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (GPU memory: torch.cuda peak stats)")
    parser.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    shape_argv = ["--batch", str(args.batch), "--views", str(args.views), "--dim", str(args.dim),
                  "--classes", str(args.classes), "--seed", str(args.seed),
                  *(["--threads", str(args.threads)] if args.threads else [])]
    repeats = args.repeats or (3 if args.quick else 10)
    if args.threads:
        torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(args.seed)
    features = torch.randn(args.batch, args.views, args.dim, generator=g).to(args.device)
    labels = torch.randint(0, args.classes, (args.batch,), generator=g).to(args.device)
    dsc_loss = SupConLoss(temperature=0.1)
    impls: dict[str, LossFn] = {"dsc": lambda f, y: dsc_loss(f, y), "reference": supcontrast_reference}
    try:
        impls["pytorch-metric-learning"] = pml_loss()
    except ImportError:
        out.print("pytorch-metric-learning not installed: skipped (pip install -e '.[dev]')")

    if args.memory_child:
        print(json.dumps({"peak_bytes": _child_peak(impls[args.memory_child], features, labels)}))  # noqa: T201
        return {}
    values = {name: float(fn(features, labels)) for name, fn in impls.items()}
    for name, value in values.items():
        if abs(value - values["dsc"]) > 1e-4 * max(1.0, abs(values["dsc"])):
            raise SystemExit(f"{name} disagrees with dsc: {value} vs {values['dsc']}")

    out.print(f"SupCon loss forward+backward, B={args.batch} V={args.views} D={args.dim} "
              f"classes={args.classes}, torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads, "
              f"median of {repeats}")
    results: dict = {"batch": args.batch, "views": args.views, "dim": args.dim, "classes": args.classes,
                     "repeats": repeats, "threads": torch.get_num_threads(), "device": args.device,
                     "loss": values["dsc"],
                     "memory_method": ("RSS high-water growth in a fresh subprocess, MALLOC_MMAP_THRESHOLD_=131072"
                                       if args.device == "cpu" else "torch.cuda.max_memory_allocated growth"),
                     "impls": {}}
    _warn_if_busy()
    timings = time_fwd_bwd(impls, features, labels, repeats)
    for name in impls:
        seconds = timings[name]
        if args.device == "cpu":
            peak = peak_bytes(name, shape_argv)
        else:
            peak = cuda_peak_bytes(impls[name], features, labels)
        results["impls"][name] = {"seconds": seconds, "peak_bytes": peak}
        mem = f"{peak / 2**20:7.1f} MiB" if peak is not None else "    n/a"
        out.print(f"  {name:<24} {seconds * 1e3:8.1f} ms   peak {mem}   loss {values[name]:.6f}")
    ref, ours = results["impls"]["reference"], results["impls"]["dsc"]
    results["speedup_vs_reference"] = ref["seconds"] / ours["seconds"]
    results["memory_ratio_vs_reference"] = _ratio(ours["peak_bytes"], ref["peak_bytes"])
    out.print(f"dsc vs reference: {results['speedup_vs_reference']:.2f}x faster (target >= 1.5x), "
              f"peak memory {_fmt(results['memory_ratio_vs_reference'])} (target <= 0.6x)")
    if "pytorch-metric-learning" in results["impls"]:
        pml = results["impls"]["pytorch-metric-learning"]
        results["speedup_vs_pml"] = pml["seconds"] / ours["seconds"]
        results["memory_ratio_vs_pml"] = _ratio(ours["peak_bytes"], pml["peak_bytes"])
        out.print(f"dsc vs pytorch-metric-learning: {results['speedup_vs_pml']:.2f}x faster, "
                  f"peak memory {_fmt(results['memory_ratio_vs_pml'])}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


def _warn_if_busy() -> None:
    """Multi-threaded CPU timings collapse when other processes hold the cores; say so."""
    import os

    if not hasattr(os, "getloadavg"):
        return
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > cores and torch.get_num_threads() > 1:
        out.print(f"note: machine busy (load {load:.1f} on {cores} cores); multi-threaded timings suffer "
                  "from contention, --threads 1 gives steadier ratios")


def _ratio(a: int | None, b: int | None) -> float | None:
    return a / b if a is not None and b else None


def _fmt(ratio: float | None) -> str:
    return f"{ratio:.2f}x" if ratio is not None else "n/a"


if __name__ == "__main__":
    main()
