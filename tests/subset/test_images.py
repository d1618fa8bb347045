"""Decoding, RGB conversion of odd modes, object crops and padding (dsc.subset.images, dsc.subset.decode)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dsc.subset import Item, Job, crop_resize, full_box, load_rgb, object_box, process, to_rgb


def _save(im: Image.Image, path, **kw):
    im.save(path, **kw)
    return path


@pytest.mark.parametrize("mode", ["L", "1", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F", "RGB"])
def test_every_mode_becomes_8bit_rgb(tmp_path, mode):
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8))
    if mode == "I;16":
        im = Image.fromarray((np.arange(120).reshape(12, 10) * 500).astype(np.uint16))
    elif mode == "I":
        im = Image.fromarray((np.arange(120).reshape(12, 10) * 500).astype(np.int32))
    elif mode == "F":
        im = Image.fromarray(np.linspace(0, 1, 120, dtype=np.float32).reshape(12, 10))
    else:
        im = base.convert(mode)
    fmt = {"CMYK": "JPEG", "F": "TIFF", "I": "TIFF"}.get(mode, "PNG")
    path = _save(im, tmp_path / f"x.{fmt.lower()}", format=fmt)
    arr = load_rgb(path)
    assert arr.dtype == np.uint8 and arr.shape == (12, 10, 3)
    if mode in ("I;16", "I"):  # scaled from 16 bit, not clipped at 255
        assert arr[-1, -1, 0] == round(119 * 500 / 257) and arr[0, 1, 0] == 2
    if mode == "F":
        assert arr[0, 0, 0] == 0 and arr[-1, -1, 0] == 255


def test_alpha_is_composited_over_white_and_palette_transparency(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half transparent
    arr = to_rgb(Image.fromarray(rgba, "RGBA"))
    a = np.asarray(arr)
    assert tuple(a[0, 0]) == (255, 0, 0) and tuple(a[3, 3]) == (255, 255, 255)
    p = Image.fromarray(rgba, "RGBA").convert("P")
    path = _save(p, tmp_path / "p.png")
    assert load_rgb(path).shape == (4, 4, 3)


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)  # wide, with a red block at the top-left
    img[:5, :5] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    path = _save(Image.fromarray(img), tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    arr = load_rgb(path)
    assert arr.shape == (40, 20, 3)  # tall after orientation
    assert arr[2, -3, 0] > 200 and arr[2, 2, 0] < 60  # the block moved to the top-right


def test_object_box_is_square_dilated_and_centered():
    mask = np.zeros((60, 100), bool)
    mask[10:30, 40:50] = True  # 20 tall, 10 wide
    assert object_box(mask, 0) == (35, 10, 55, 30)
    assert object_box(mask, 5) == (30, 5, 60, 35)
    assert object_box(np.zeros((5, 5), bool), 3) is None
    assert full_box(100, 60) == (0, -20, 100, 80)


def _item_files(tmp_path, img, mask):
    ip, mp = tmp_path / "i.png", tmp_path / "m.png"
    Image.fromarray(img).save(ip)
    Image.fromarray(mask).save(mp)
    return Item(0, ip, mp)


def test_crop_to_object_crops_image_and_mask_identically(tmp_path):
    img = np.full((60, 100, 3), 50, np.uint8)
    img[20:40, 30:50] = (255, 0, 0)  # a 20x20 red object
    mask = np.zeros((60, 100), np.uint8)
    mask[20:40, 30:50] = 255
    job = Job(resolution=30, crop_to_object=True, dilation=5, with_masks=True, compress=None)
    res = process(_item_files(tmp_path, img, mask), job)
    assert res.reason is None and res.meta["box"] == [25, 15, 55, 45]
    # 30 px box at 30 px: the object lies at 5..25 in both image and mask
    expected = np.zeros((30, 30), np.uint8)
    expected[5:25, 5:25] = 255
    np.testing.assert_array_equal(res.mask, expected)
    red = (res.image[..., 0] > 200) & (res.image[..., 1] < 60)
    np.testing.assert_array_equal(red, expected > 0)


def test_crop_pads_at_borders_edge_or_constant(tmp_path):
    img = np.full((40, 40, 3), 200, np.uint8)
    img[:10, :10] = (0, 0, 255)  # object in the corner
    mask = np.zeros((40, 40), np.uint8)
    mask[:10, :10] = 255
    item = _item_files(tmp_path, img, mask)
    edge = process(item, Job(resolution=30, crop_to_object=True, dilation=10, with_masks=True, compress=None))
    const = process(item, Job(resolution=30, crop_to_object=True, dilation=10, pad="constant", with_masks=True,
                              compress=None))
    assert edge.meta["box"] == [-10, -10, 20, 20]
    assert tuple(const.image[0, 0]) == (0, 0, 0)  # padded black
    assert tuple(edge.image[0, 0]) == (0, 0, 255)  # edge repeats the object's border pixels
    assert edge.mask[0, 0] == 0 and edge.mask[15, 15] == 255  # masks always padded with 0
    np.testing.assert_array_equal(edge.mask, const.mask)


def test_without_crop_the_image_is_padded_to_a_square(tmp_path):
    img = np.full((20, 40, 3), 255, np.uint8)
    res = process(Item(0, img), Job(resolution=20, pad="constant", compress=None))
    assert res.image.shape == (20, 20, 3)
    assert res.image[0, 10].max() == 0 and res.image[10, 10].min() == 255


def test_bad_files_are_reasons_not_crashes(tmp_path):
    good = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good, "JPEG")
    (tmp_path / "trunc.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    job = Job(resolution=16, compress=None)
    reasons = {name: process(Item(0, tmp_path / name), job).reason
               for name in ("trunc.jpg", "zero.png", "junk.png", "missing.png")}
    assert reasons == {"trunc.jpg": "truncated", "zero.png": "empty file", "junk.png": "unreadable",
                       "missing.png": "missing file"}


def test_mask_of_another_size_or_empty(tmp_path):
    img = np.zeros((20, 20, 3), np.uint8)
    item = _item_files(tmp_path, img, np.full((10, 10), 255, np.uint8))
    res = process(item, Job(resolution=16, with_masks=True, crop_to_object=True))
    assert res.reason == "bad mask" and res.mask_problem and "10x10" in res.detail
    full = process(item, Job(resolution=16, with_masks=True, crop_to_object=True, on_missing_mask="full",
                             compress=None))
    assert full.reason is None and full.mask.min() == 255 and full.meta["mask"] == "full (fallback)"
    empty = _item_files(tmp_path, img, np.zeros((20, 20), np.uint8))
    res = process(empty, Job(resolution=16, with_masks=True, crop_to_object=True))
    assert res.reason == "empty mask" and not res.mask_problem


def test_jpeg_draft_matches_full_decode(tmp_path):
    yy, xx = np.mgrid[0:960, 0:1280]
    img = np.stack([(xx // 5) % 256, (yy // 4) % 256, ((xx + yy) // 9) % 256], axis=-1).astype(np.uint8)
    path = tmp_path / "big.jpg"
    Image.fromarray(img).save(path, quality=95)
    fast = process(Item(0, path), Job(resolution=64, compress=None)).image
    slow = process(Item(0, path), Job(resolution=64, compress=None, draft=False)).image
    assert fast.shape == slow.shape == (64, 64, 3)
    assert np.abs(fast.astype(int) - slow.astype(int)).mean() < 4


def test_crop_resize_inside_image_uses_box():
    im = Image.fromarray(np.arange(100, dtype=np.uint8).reshape(10, 10))
    out = np.asarray(crop_resize(im, (2, 3, 4, 5), 2, resample=Image.Resampling.NEAREST))
    np.testing.assert_array_equal(out, [[32, 33], [42, 43]])


def test_mask_follows_the_image_exif_orientation(tmp_path):
    img = np.full((20, 40, 3), 90, np.uint8)  # stored wide; displayed tall (orientation 6)
    img[2:8, 2:8] = (255, 0, 0)
    mask = np.zeros((20, 40), np.uint8)
    mask[2:8, 2:8] = 255  # made on the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(img).save(tmp_path / "i.jpg", exif=exif.tobytes(), quality=95)
    Image.fromarray(mask).save(tmp_path / "m.png")
    res = process(Item(0, tmp_path / "i.jpg", tmp_path / "m.png"),
                  Job(resolution=6, crop_to_object=True, dilation=0, with_masks=True, compress=None))
    assert res.reason is None and res.meta["size"] == [20, 40] and res.meta["exif_transposed"]
    assert res.mask.min() == 255  # the box is exactly the object
    assert res.image[1:-1, 1:-1, 0].min() > 230 and res.image[..., 0].mean() > 200  # and it is red (JPEG-blurred rim)
