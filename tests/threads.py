"""One intra-op torch thread for tests of tiny models."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run with one torch thread, restored afterwards. On a shared 2-core machine two spinning OpenMP threads
    make tiny models several (up to 30) times slower; results do not depend on it. Launched processes are
    pinned the same way, so in-process reference runs compute as they do."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
