"""Several processes, for every command: ``accelerate launch`` and ``torchrun`` work unchanged.

The launcher sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT``. Without those
variables everything here is a no-op: one process, rank 0, barriers return at once, gathers return ``[obj]``.

Non-training commands (augment, invert, the probe's embedding pass) use :func:`session`, which starts a
torch.distributed process group (gloo for the small control messages; NCCL too when CUDA is there) and ends
it. They shard their work with :func:`shard` (item ``i`` goes to rank ``i % world``), let the main process
(rank 0) write the final output after a :func:`barrier`, and use :func:`together` so that an error in one
process stops all of them instead of leaving the others waiting at the next barrier.

Training (pretrain, baseline) uses :func:`setup_training`, which picks the device and starts a group (NCCL on
GPU, gloo on CPU) for DistributedDataParallel; the returned :class:`DistEnv` carries the collective calls.
Every process draws the same global batches from identically seeded generators and trains on its own slice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from dsc.errors import DscError

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)
T = TypeVar("T")


class PeerFailedError(DscError):
    """Another process of a multi-process run failed."""


def world_size() -> int:
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def rank() -> int:
    try:
        return int(os.environ.get("RANK", "0")) if world_size() > 1 else 0
    except ValueError:
        return 0


def local_rank() -> int:
    try:
        return int(os.environ.get("LOCAL_RANK", "0")) if world_size() > 1 else 0
    except ValueError:
        return 0


def is_main() -> bool:
    return rank() == 0


def distributed() -> bool:
    return world_size() > 1


def shard(items: Sequence[T], *, of: int | None = None, index: int | None = None) -> list[T]:
    """This process's items: every ``world``-th one starting at its rank (the same split on every run)."""
    world = world_size() if of is None else of
    r = rank() if index is None else index
    return list(items[r::world]) if world > 1 else list(items)


def _initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def init() -> bool:
    """Start the process group when launched with several processes; True when this call started it."""
    if not distributed() or _initialized():
        return False
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_CPU", "").lower() not in {"1", "true", "yes"}:
        torch.cuda.set_device(local_rank())
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend)
    log.debug("process %d of %d started (%s)", rank(), world_size(), backend)
    return True


def barrier() -> None:
    """Wait for every process (a CPU all-reduce, which works for every backend)."""
    if not distributed() or not _initialized():
        return
    import torch
    import torch.distributed as dist

    dist.all_reduce(torch.zeros(1))


def gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` (picklable, small), in rank order, on every process."""
    if not distributed() or not _initialized():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """The main process's ``obj`` on every process."""
    if not distributed() or not _initialized():
        return obj
    import torch.distributed as dist

    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def together(what: str) -> Iterator[None]:
    """Run a block on every process and check that all succeeded before going on.

    An error in this process is re-raised here; an error in another one raises ``PeerFailedError`` naming
    it, so no process waits forever at a later barrier for a peer that has died of an error.
    """
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 - re-raised below, after telling the others
        error = exc
    if distributed() and _initialized():
        text = None if error is None else (str(error) or type(error).__name__)
        reports = gather_objects(text)
        if error is None:
            failed = [(r, m) for r, m in enumerate(reports) if m is not None]
            if failed:
                r, m = failed[0]
                raise PeerFailedError(f"process {r} failed while {what}: {m}",
                                      hint="fix that error and rerun (with --resume where the command has it)")
    if error is not None:
        raise error


@contextmanager
def session() -> Iterator[None]:
    """The process group for one command: started on entry when launched with several processes, ended on
    exit. Non-main processes log warnings only and print nothing on stdout from then on (one reports)."""
    started = init()
    if distributed() and not is_main():  # for the rest of this process: the main one reports
        from dsc.console import out

        root = logging.getLogger()
        root.setLevel(max(root.level, logging.WARNING))
        out.quiet = True
    try:
        yield
    finally:
        if started:
            import torch.distributed as dist

            dist.destroy_process_group()


# ------------------------------------------------------------------------------------------- training
@dataclass
class DistEnv:
    """Where this training process runs, with the collective calls training needs."""

    device: torch.device
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (the group's own barrier: NCCL has no CPU all-reduce)."""
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()

    def all_reduce_sum(self, x: torch.Tensor) -> torch.Tensor:
        """The sum of ``x`` over every process (a copy; ``x`` is left as it is)."""
        if self.distributed:
            import torch.distributed as dist

            x = x.clone()
            dist.all_reduce(x)
        return x

    def local_slice(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's rows of a global batch (strided, so every process gets the same count +-1)."""
        return batch[self.rank::self.world] if self.distributed else batch

    def teardown(self) -> None:
        """Wait for every process, then end the process group :func:`setup_training` started."""
        if self.distributed and _initialized():
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()


def setup_training(device: str = "auto") -> DistEnv:
    """Start the process group when launched with several processes (NCCL on GPU, gloo on CPU); pick the
    device (``"cpu"``, ``ACCELERATE_USE_CPU=1`` or no CUDA: the CPU; else the GPU ``LOCAL_RANK``)."""
    import torch
    import torch.distributed as dist

    world, r, local = world_size(), rank(), local_rank()
    use_cpu = device == "cpu" or os.environ.get("ACCELERATE_USE_CPU", "").lower() in {"1", "true", "yes"} \
        or not torch.cuda.is_available()
    dev = torch.device("cpu") if use_cpu else torch.device("cuda", local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="gloo" if dev.type == "cpu" else "nccl")
    return DistEnv(dev, r, world, local)
