"""Multi-process training with plain torch.distributed, so `accelerate launch` (or torchrun) works unchanged.

The launcher sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT``; we start a process
group (NCCL on GPU, gloo on CPU) and wrap the model in DistributedDataParallel. Every process draws the same
global batches from identically seeded generators and trains on its own slice; contrast features are
gathered with :func:`gather_with_grad` so the loss sees the whole global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistEnv:
    """Where this process runs."""

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


def setup(device: str = "auto") -> DistEnv:
    """Initialise the process group when launched with several processes; pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cpu = device == "cpu" or os.environ.get("ACCELERATE_USE_CPU", "").lower() in {"1", "true", "yes"} \
        or not torch.cuda.is_available()
    dev = torch.device("cpu") if use_cpu else torch.device("cuda", local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="gloo" if dev.type == "cpu" else "nccl")
    return DistEnv(dev, rank, world, local)


def teardown(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def gather_with_grad(x: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Concatenate ``x`` of every process along dim 0; the local slice keeps its autograd graph.

    Slices must have equal sizes. Other processes' slices are constants here; because each process computes
    the same global loss, scale the loss by ``world`` before backward so DDP's gradient averaging gives the
    exact gradient of the global loss.
    """
    if not env.distributed:
        return x
    parts = [torch.empty_like(x) for _ in range(env.world)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[env.rank] = x
    return torch.cat(parts, 0)


def all_reduce_sum(x: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed:
        x = x.clone()
        dist.all_reduce(x)
    return x


def local_slice(batch: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """This process's rows of a global batch (strided, so every process gets the same count ±1)."""
    return batch[env.rank::env.world] if env.distributed else batch
