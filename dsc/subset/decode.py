"""`dsc subset`'s decoding: every planned image (and mask) decoded, converted to RGB, cropped and resized
(the rules are in dsc.subset.images), in worker processes for larger subsets.

`decode_items` yields results in plan order with a bounded window of chunks in flight; a bad file never
raises, it comes back as a `Processed` with the reason it was skipped. Workers ignore Ctrl-C and die with
the parent; `terminate_as_interrupt` makes SIGTERM stop the writer like Ctrl-C.
"""

from __future__ import annotations

import math
import os
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from dsc.settings import SubsetSettings
from dsc.subset.images import (
    ImageProblem,
    crop_resize,
    exif_method,
    full_box,
    image_name,
    load_pixels,
    mask_array,
    object_box,
    open_image,
    orient,
    oriented_size,
    to_rgb,
)

#: Items per task sent to a worker, tasks in flight per worker.
TASK_ITEMS = 8
IN_FLIGHT = 4
#: Below this many images the pool is not worth starting.
MIN_PARALLEL = 48


@dataclass(frozen=True)
class Job:
    """How every image of a subset is processed (shared by all items; picklable)."""

    resolution: int
    crop_to_object: bool = False
    dilation: int = 32
    pad: str = "edge"
    with_masks: bool = False
    on_missing_mask: str = "error"  # error | skip | full
    compress: int | None = 1  # zlib level for precompressed HDF5 chunks (1: fastest, ~2% larger than 4)
    draft: bool = True  # let the JPEG decoder downscale when the target is much smaller

@dataclass
class Item:
    """One image to process: its row index in the plan, the image and (optional) mask source."""

    index: int
    image: Any
    mask: Any = None

@dataclass
class Processed:
    """The result for one item: pixels (array or zlib-compressed bytes) or the problem that skipped it."""

    index: int
    image: Any = None
    mask: Any = None
    digest: bytes = b""
    meta: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    detail: str = ""
    mask_problem: bool = False


# ------------------------------------------------------------------------------------------ one image
def _load_mask(src: Any, image_size: tuple[int, int], raw_size: tuple[int, int],
               method: Image.Transpose | None) -> np.ndarray:
    """The item's binary mask in the image's (oriented) frame; ImageProblem(mask=True) if unusable."""
    im = open_image(src, what="mask")
    load_pixels(im, "mask", is_mask=True)
    im, own = orient(im)
    if own is None and method is not None and im.size == raw_size:
        im = im.transpose(method)  # the mask was made on the stored pixels: orient it like the image
    if im.size != image_size:
        raise ImageProblem("bad mask", f"mask {image_name(im) or src} is {im.size[0]}x{im.size[1]}, "
                           f"the image is {image_size[0]}x{image_size[1]}", mask=True)
    return mask_array(im)

def process(item: Item, job: Job) -> Processed:
    """Decode, convert, crop and resize one item. Never raises for bad files: returns the reason."""
    try:
        return _process(item, job)
    except ImageProblem as exc:
        return Processed(item.index, reason=exc.reason, detail=exc.detail, mask_problem=exc.mask)
    except MemoryError:
        raise
    except Exception as exc:  # a decoder bug on one odd file must not stop the whole subset
        return Processed(item.index, reason="unreadable", detail=f"{item.image}: {type(exc).__name__}: {exc}")

def _process(item: Item, job: Job) -> Processed:
    from dsc.store.writer import row_digest

    im = open_image(item.image)
    raw_size = im.size
    method = exif_method(im)
    size = oriented_size(raw_size, method)
    mask: np.ndarray | None = None
    mask_fallback = False
    if job.with_masks:
        if item.mask is None:
            if job.on_missing_mask == "full":
                mask_fallback = True
            else:
                raise ImageProblem("bad mask", f"no mask for {item.image}", mask=True)
        else:
            try:
                mask = _load_mask(item.mask, size, raw_size, method)
            except ImageProblem as exc:
                if not exc.mask or job.on_missing_mask != "full":
                    raise
                mask_fallback = True
        if mask_fallback:
            mask = np.ones((size[1], size[0]), dtype=bool)
    if job.crop_to_object and not mask_fallback:
        if mask is None:
            raise ImageProblem("bad mask", f"no mask for {item.image}", mask=True)
        box = object_box(mask, job.dilation)
        if box is None:
            raise ImageProblem("empty mask", f"the mask of {item.image} is empty; nothing to crop")
    else:
        box = full_box(*size)
    side = box[2] - box[0]
    # JPEG draft: decode at 1/2, 1/4 or 1/8 scale when the box is still at least `resolution` there
    if job.draft and im.format == "JPEG" and side > 2 * job.resolution:
        factor = job.resolution / side
        im.draft("RGB", (math.ceil(raw_size[0] * factor), math.ceil(raw_size[1] * factor)))
    load_pixels(im, "image")
    im, _ = orient(im)
    sx, sy = im.size[0] / size[0], im.size[1] / size[1]
    scaled = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
    rgb = crop_resize(to_rgb(im), scaled, job.resolution, pad=job.pad)
    image = np.asarray(rgb, dtype=np.uint8)
    out_mask = None
    if mask is not None:
        m = Image.fromarray(mask.astype(np.uint8) * 255)
        m = crop_resize(m, box, job.resolution, pad="constant", resample=Image.Resampling.BILINEAR)
        out_mask = np.where(np.asarray(m) >= 128, 255, 0).astype(np.uint8)
    meta = {"size": list(size), "box": list(box)}
    if method is not None:
        meta["exif_transposed"] = True
    if mask_fallback:
        meta["mask"] = "full (fallback)"
    digest = row_digest(image)
    if job.compress is not None:
        image_out: Any = zlib.compress(image.tobytes(), job.compress)
        mask_out: Any = zlib.compress(out_mask.tobytes(), job.compress) if out_mask is not None else None
    else:
        image_out, mask_out = image, out_mask
    return Processed(item.index, image=image_out, mask=mask_out, digest=digest, meta=meta)

def process_many(items: list[Item], job: Job) -> list[Processed]:
    """Process a chunk of items (the unit of work sent to a worker process)."""
    return [process(item, job) for item in items]

def worker_init() -> None:
    """Worker processes ignore Ctrl-C (the parent stops them, so an interrupt leaves no stray output) and
    end when the parent process ends."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (inherited through fork)
    if sys.platform.startswith("linux"):  # die with the parent, even if it is killed outright
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    os.environ.setdefault("OMP_NUM_THREADS", "1")


# ------------------------------------------------------------------------------------------ the pool
@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while writing, so the partial output is removed and workers stop."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def workers_for(settings: SubsetSettings, n: int) -> int:
    """Worker processes for ``n`` images: --workers (else the usable CPUs), 1 below MIN_PARALLEL."""
    if settings.workers:
        wanted = settings.workers
    else:
        try:
            wanted = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not on Linux
            wanted = os.cpu_count() or 1
    return 1 if n < MIN_PARALLEL else max(1, min(wanted, n // TASK_ITEMS))


def _chunks(items: list[Item], size: int) -> Iterator[list[Item]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def decode_items(items: list[Item], job: Job, workers: int) -> Iterator[Processed]:
    """Process items in order; with ``workers > 1`` in a process pool with a bounded window in flight."""
    if workers <= 1:
        for chunk in _chunks(items, TASK_ITEMS):
            yield from process_many(chunk, job)
        return
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    ctx = get_context("fork" if sys.platform.startswith("linux") else "spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=worker_init)
    try:
        pending: list[Any] = []
        chunks = _chunks(items, TASK_ITEMS)
        for chunk in chunks:
            pending.append(pool.submit(process_many, chunk, job))
            if len(pending) >= workers * IN_FLIGHT:
                break
        while pending:
            done = pending.pop(0).result()
            nxt = next(chunks, None)
            if nxt is not None:
                pending.append(pool.submit(process_many, nxt, job))
            yield from done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
