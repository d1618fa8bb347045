"""How many CPU threads a dsc command computes with, decided in one place (docs/performance.md#threads).

Torch's default is one intra-op thread per core. On a machine where other processes already use the cores
that is the worst choice: each parallel region waits at a barrier for its slowest thread, and a thread the
kernel has parked behind another process stalls all of them (``dsc augment`` measured 0.51 images/s with the
default and 14.8 with one thread on a busy 2-core machine). dsc therefore takes

- ``--threads N`` (or ``DSC_THREADS=N``) when given;
- else ``OMP_NUM_THREADS`` when the user set it (torchrun and accelerate set it per process too);
- else the cores this process may use (affinity mask, physical cores, cgroup CPU quota), divided among the
  processes of a multi-process session on this machine (``LOCAL_WORLD_SIZE``), and lowered to the cores
  that were idle when the command started (sampled for 0.1 s), at least 1.

Inter-op threads are left as torch sets them: dsc starts no inter-op work (no ``torch.jit.fork``), so torch
never starts that pool. :func:`configure` writes the choice to ``OMP_NUM_THREADS``/``MKL_NUM_THREADS``
before torch is loaded (torch reads them when it loads; child processes inherit them), or sets torch directly
when ``--threads`` is given after torch was loaded. When torch was loaded by the caller (a notebook,
a test) and no ``--threads`` is given, the caller's torch settings stay. :func:`record` is what outputs
record (``provenance.threads``). No torch import here.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: The variables through which OpenMP and MKL (torch's CPU backends) take their thread count.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: How long :func:`idle_cores` watches the CPUs.
SAMPLE_S = 0.1
#: A core counts as free when at least this share of it was idle.
FREE_SHARE = 0.75


@dataclass(frozen=True)
class ThreadChoice:
    """The threads a command computes with, and why."""

    intra_op: int
    source: str          # "--threads", "DSC_THREADS", "OMP_NUM_THREADS", "default" or "caller"
    reason: str
    cores: int | None = None
    processes: int | None = None
    idle: float | None = None

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


#: The last choice :func:`configure` applied (None: never called in this process).
_CHOICE: ThreadChoice | None = None
#: The OMP_NUM_THREADS value dsc wrote itself (so a second command in the same process does not mistake it
#: for the user's).
_WRITTEN: str | None = None


def _positive(value: str | None) -> int | None:
    try:
        n = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return n if n >= 1 else None


def affinity() -> set[int]:
    """The CPUs this process may run on."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return set(range(os.cpu_count() or 1))


def physical_cores(cpus: set[int], sysfs: Path = Path("/sys/devices/system/cpu")) -> int:
    """Distinct physical cores among ``cpus`` (hyper-threads of one core count once); ``len(cpus)`` where
    the topology cannot be read."""
    cores = set()
    for cpu in cpus:
        topo = sysfs / f"cpu{cpu}" / "topology"
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            return len(cpus)
    return len(cores) or len(cpus)


def cgroup_quota(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> int | None:
    """The CPU quota of this cgroup (v2) in whole cores, rounded up; None when unlimited or unknown."""
    try:
        quota, period = path.read_text().split()[:2]
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """The cores this process may use: physical cores of its affinity mask, capped by a cgroup quota."""
    cores = physical_cores(affinity())
    quota = cgroup_quota()
    return max(1, min(cores, quota) if quota else cores)


def _cpu_times(cpus: set[int], stat: Path) -> tuple[int, int]:
    """(idle, total) clock ticks of ``cpus`` from /proc/stat."""
    idle = total = 0
    for line in stat.read_text().splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        ticks = [int(x) for x in rest.split()]
        idle += ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
        total += sum(ticks[:8])  # user..steal (guest time is already in user)
    return idle, total


def idle_share(cpus: set[int] | None = None, seconds: float = SAMPLE_S, stat: Path = Path("/proc/stat")
               ) -> float | None:
    """The share (0..1) of ``cpus`` that was idle over ``seconds``; None where /proc/stat is missing."""
    cpus = affinity() if cpus is None else cpus
    try:
        idle0, total0 = _cpu_times(cpus, stat)
        time.sleep(seconds)
        idle1, total1 = _cpu_times(cpus, stat)
    except (OSError, ValueError):
        return None
    if total1 <= total0:
        return None
    return min(1.0, max(0.0, (idle1 - idle0) / (total1 - total0)))


def processes_per_machine(env: Mapping[str, str]) -> int:
    """Processes of this session on this machine: ``LOCAL_WORLD_SIZE`` (torchrun, accelerate), else 1."""
    return _positive(env.get("LOCAL_WORLD_SIZE")) or 1


def default_threads(cores: int, processes: int = 1, idle: float | None = None) -> int:
    """Threads per process: the cores divided among the processes on the machine, no more than the free
    cores' share when ``idle`` (the idle share of the cores) is known; at least 1."""
    share = max(1, cores // max(1, processes))
    if idle is None:
        return share
    free = math.floor(cores * idle + (1 - FREE_SHARE))  # a core that was >= 75 % idle counts as free
    return max(1, min(share, free // max(1, processes)))


def choose(requested: int | None = None, *, env: Mapping[str, str] | None = None, cores: int | None = None,
           idle: float | None = None, sample: bool = True) -> ThreadChoice:
    """The threads a command should compute with (see the module docstring for the order)."""
    from dsc.errors import ConfigError

    env = os.environ if env is None else env
    if requested is not None:
        if requested < 1:
            raise ConfigError(f"--threads must be at least 1 (got {requested})",
                              hint="pass --threads 1 or more, or leave it out for the default")
        return ThreadChoice(requested, "--threads", "requested")
    if env.get("DSC_THREADS", "").strip():
        from_env = _positive(env["DSC_THREADS"])
        if from_env is None:
            raise ConfigError(f"DSC_THREADS must be a whole number of at least 1 (got {env['DSC_THREADS']!r})",
                              hint="set DSC_THREADS=2, for example, or unset it for the default")
        return ThreadChoice(from_env, "DSC_THREADS", "environment")
    user = env.get("OMP_NUM_THREADS")
    if user is not None and user != _WRITTEN and _positive(user):
        return ThreadChoice(_positive(user), "OMP_NUM_THREADS", "set in the environment")
    cores = available_cores() if cores is None else cores
    processes = processes_per_machine(env)
    if idle is None and sample:
        idle = idle_share()
    n = default_threads(cores, processes, idle)
    reason = f"{cores} cores / {processes} process{'es' if processes > 1 else ''}"
    if idle is not None:
        reason += f", {100 * idle:.0f}% idle at start"
    return ThreadChoice(n, "default", reason, cores, processes, None if idle is None else round(idle, 3))


def configure(requested: int | None = None) -> ThreadChoice:
    """Choose and apply the threads of this command (called once, by the ``dsc`` root command)."""
    global _CHOICE, _WRITTEN
    torch = sys.modules.get("torch")
    if torch is not None and requested is None and not os.environ.get("DSC_THREADS", "").strip():
        choice = ThreadChoice(torch.get_num_threads(), "caller",
                              "torch was loaded before the command; its settings were kept")
    else:
        choice = choose(requested)
        if choice.source != "OMP_NUM_THREADS":
            for var in THREAD_VARS:
                os.environ[var] = str(choice.intra_op)
            _WRITTEN = str(choice.intra_op)
        if torch is not None:
            torch.set_num_threads(choice.intra_op)
    _CHOICE = choice
    return choice


def record() -> dict[str, Any]:
    """What outputs record: the choice, and torch's own figures where torch is loaded."""
    out: dict[str, Any] = _CHOICE.record() if _CHOICE is not None else {"source": "not configured"}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch_intra_op"] = torch.get_num_threads()
        out["torch_inter_op"] = torch.get_num_interop_threads()
    return out


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread for the block, restored afterwards. Small work (a linear layer on a few
    thousand features, a tiny test model) gains nothing from threads, and on a busy CPU spinning OpenMP threads
    made it 10-30x slower; results do not depend on it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
