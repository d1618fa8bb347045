"""Decoding, RGB conversion, object crops and resizing of dataset images.

Everything here is plain PIL + numpy and runs in `dsc subset`'s worker processes (dsc.subset.decode). The rules (also in
docs/commands/subset.md):

- Every image becomes 8-bit RGB: EXIF orientation applied; grayscale, palette, CMYK and bilevel converted;
  alpha composited over white; 16-bit and 32-bit integer images scaled to 8 bit (not clipped).
- Masks become binary (object = 255): a mask with values above 1 is thresholded at 128, a 0/1 mask at 1.
- The square box is either the object box (mask bounding box grown by ``dilation`` pixels on every side,
  i.e. the box of the mask dilated by a square max filter, then made square around its centre) or, without
  cropping, the whole image padded to a square. Parts of the box outside the image are padded (``edge``
  repeats the border pixels, ``constant`` fills black); masks are always padded with 0. The box is then
  resized to ``resolution`` x ``resolution`` (bicubic; masks bilinear and re-thresholded).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

Box = tuple[int, int, int, int]

#: Reasons an image is skipped (the keys of the summary's ``by_reason``).
REASONS = ("missing file", "empty file", "unreadable", "truncated", "too large", "bad mask", "empty mask")


class ImageProblem(Exception):
    """An image or mask that cannot be used. ``reason`` is a short category, ``detail`` the specifics."""

    def __init__(self, reason: str, detail: str, *, mask: bool = False) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.mask = mask


# ----------------------------------------------------------------------------------------- decoding
def open_image(src: Path | str | np.ndarray, *, what: str = "image") -> Image.Image:
    """Open an image lazily (header only for files); arrays are wrapped. Problems raise ImageProblem."""
    is_mask = what == "mask"
    if isinstance(src, np.ndarray):
        arr = src
        if arr.dtype != np.uint8 and arr.dtype != bool:
            raise ImageProblem("unreadable", f"{what} array has dtype {arr.dtype}, expected uint8", mask=is_mask)
        if arr.dtype == bool:
            arr = arr.astype(np.uint8) * 255
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise ImageProblem("unreadable", f"{what} array has shape {arr.shape}", mask=is_mask)
        return Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
    path = Path(src)
    try:
        size = path.stat().st_size
    except OSError:
        raise ImageProblem("missing file" if not is_mask else "bad mask", f"{what} {path} does not exist",
                           mask=is_mask) from None
    if size == 0:
        raise ImageProblem("empty file" if not is_mask else "bad mask", f"{what} {path} is a zero-byte file",
                           mask=is_mask)
    try:
        return Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageProblem("too large", f"{path}: {exc}", mask=is_mask) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageProblem("unreadable" if not is_mask else "bad mask", f"{path}: {exc}", mask=is_mask) from None

def load_pixels(im: Image.Image, what: str, is_mask: bool = False) -> None:
    """Decode an opened image's pixels; decoder failures raise ImageProblem."""
    try:
        im.load()
    except Image.DecompressionBombError as exc:
        raise ImageProblem("too large", f"{image_name(im)}: {exc}", mask=is_mask) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        reason = "truncated" if "truncated" in str(exc).lower() else "unreadable"
        raise ImageProblem("bad mask" if is_mask else reason, f"{what} {image_name(im)}: {exc}", mask=is_mask) from None

def image_name(im: Image.Image) -> str:
    """The file an image came from, for messages."""
    return str(getattr(im, "filename", "") or "<array>")

def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info

def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode (see module docstring for the rules)."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im).astype(np.float64)
        if mode.startswith("I;16") or a.max(initial=0) > 255:
            a = a / 257.0
        gray = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if mode == "F":
        a = np.asarray(im).astype(np.float64)
        if a.size and np.nanmax(a) <= 1.0:
            a = a * 255.0
        gray = np.clip(np.rint(np.nan_to_num(a)), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if _has_alpha(im):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return im.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageProblem("unreadable", f"{image_name(im)}: cannot convert mode {mode} to RGB ({exc})") from None

def mask_array(im: Image.Image) -> np.ndarray:
    """A binary mask (bool HxW) from any PIL mode."""
    if im.mode in ("RGB", "RGBA", "P", "PA", "LA", "CMYK", "YCbCr"):
        a = np.asarray(im.convert("L"))
    else:
        a = np.asarray(im)
        if a.ndim == 3:
            a = a.max(axis=2)
    threshold = 128 if a.max(initial=0) > 1 else 1
    if a.dtype == np.uint16 or im.mode.startswith("I;16"):
        threshold = 32768 if a.max(initial=0) > 255 else threshold
    return a >= threshold


# ------------------------------------------------------------------------------------------ geometry
def object_box(mask: np.ndarray, dilation: int) -> Box | None:
    """Square box (x0, y0, x1, y1; may exceed the image) around the mask's bounding box grown by
    ``dilation`` pixels; None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    x0, x1 = int(cols[0]) - dilation, int(cols[-1]) + 1 + dilation
    y0, y1 = int(rows[0]) - dilation, int(rows[-1]) + 1 + dilation
    return square_box(x0, y0, x1, y1)

def square_box(x0: int, y0: int, x1: int, y1: int) -> Box:
    """The smallest square with the same centre (to half a pixel) containing the box."""
    w, h = x1 - x0, y1 - y0
    side = max(w, h)
    sx, sy = x0 - (side - w) // 2, y0 - (side - h) // 2
    return sx, sy, sx + side, sy + side

def full_box(width: int, height: int) -> Box:
    """The whole image padded to a centred square."""
    return square_box(0, 0, width, height)

def crop_resize(im: Image.Image, box: tuple[float, float, float, float], size: int, *, pad: str = "edge",
                resample: int = Image.Resampling.BICUBIC) -> Image.Image:
    """Crop ``box`` (padding outside the image) and resize it to ``size`` x ``size``."""
    width, height = im.size
    x0, y0, x1, y1 = box
    if x0 >= 0 and y0 >= 0 and x1 <= width and y1 <= height:
        return im.resize((size, size), resample, box=(x0, y0, x1, y1))
    ix0, iy0, ix1, iy1 = math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1)
    cx0, cy0, cx1, cy1 = max(ix0, 0), max(iy0, 0), min(ix1, width), min(iy1, height)
    if cx1 <= cx0 or cy1 <= cy0:  # box entirely outside: cannot happen for object or full boxes
        raise ImageProblem("bad mask", f"crop box {box} lies outside the {width}x{height} image")
    side = max(x1 - x0, y1 - y0)
    if side > 4 * size:  # scale the visible part down first: a thin image never allocates a huge padded square
        scale = 2 * size / side
        im = im.crop((cx0, cy0, cx1, cy1))
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), resample)
        x0, y0, x1, y1 = ((x0 - cx0) * scale, (y0 - cy0) * scale, (x1 - cx0) * scale, (y1 - cy0) * scale)
        ix0, iy0, ix1, iy1 = math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1)
        cx0, cy0, cx1, cy1 = max(ix0, 0), max(iy0, 0), min(ix1, im.width), min(iy1, im.height)
    arr = np.asarray(im.crop((cx0, cy0, cx1, cy1)))
    pads = [(cy0 - iy0, iy1 - cy1), (cx0 - ix0, ix1 - cx1)] + [(0, 0)] * (arr.ndim - 2)
    arr = np.pad(arr, pads, mode="edge") if pad == "edge" else np.pad(arr, pads, mode="constant")
    padded = Image.fromarray(arr)
    return padded.resize((size, size), resample, box=(x0 - ix0, y0 - iy0, x1 - ix0, y1 - iy0))


# ------------------------------------------------------------------------------------------ orientation
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
              7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def exif_method(im: Image.Image) -> Image.Transpose | None:
    """The transpose that EXIF orientation asks for (None when upright, absent or malformed)."""
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # malformed EXIF: keep pixels as stored
        orientation = 1
    return _TRANSPOSE.get(orientation)

def oriented_size(size: tuple[int, int], method: Image.Transpose | None) -> tuple[int, int]:
    """The (width, height) after ``method``."""
    swaps = method in (Image.Transpose.TRANSPOSE, Image.Transpose.ROTATE_270, Image.Transpose.TRANSVERSE,
                       Image.Transpose.ROTATE_90)
    return (size[1], size[0]) if swaps else size

def orient(im: Image.Image) -> tuple[Image.Image, Image.Transpose | None]:
    """Apply EXIF orientation to a loaded image; return it and the transpose used."""
    method = exif_method(im)
    return (im.transpose(method) if method is not None else im), method

def load_rgb(src: Path | str | np.ndarray) -> np.ndarray:
    """An image as 8-bit RGB array (HxWx3), EXIF orientation applied. Raises ImageProblem."""
    im = open_image(src)
    load_pixels(im, "image")
    im, _ = orient(im)
    return np.asarray(to_rgb(im), dtype=np.uint8)
