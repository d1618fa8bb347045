"""Dataset readers on malformed input: folder metadata.json / metadata.csv / manifests, MVIP meta.json,
image files, and links out of the root. Each case either reads cleanly or raises InputError (one line);
images never raise, they become skip reasons."""

from __future__ import annotations

import io
import json
import os
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from dsc_datasets.folder import FolderDataset
from dsc_datasets.mvip import MvipDataset, write_fake_mvip
from PIL import Image

from dsc.errors import DscError, InputError
from dsc.subset import REASONS, Item, Job, process
from tests.security.fuzzlib import mutate

VALID_JSON = json.dumps({
    "classes": {"bolt": {"super_classes": ["Fastener"], "tags": ["metal"], "description": "a bolt"}},
    "groups": {"bolt/a.png": "g1", "nut/b.png": "g2"},
    "splits": {"bolt/a.png": "train", "nut/b.png": "valid"},
}).encode()
VALID_CSV = b"class,super_classes,tags,description\nbolt,Fastener;Metal,shiny,a bolt\nnut,Fastener,,a nut\n"
VALID_MANIFEST = b"path,group,split\nbolt/a.png,g1,train\nnut/b.png,g2,test\n"
VALID_META = json.dumps({"class_name": "nut", "super_class": ["CarComponent"], "description": "a nut",
                         "tags": ["metal"]}).encode()

MALFORMED_JSON = [
    b"", b"\xff\xfe\x00garbage", b"[]", b"null", b"42", b'"text"', b"{", b"{\"classes\": []}",
    b'{"classes": {"bolt": 3}}', b'{"classes": {"bolt": {"super_classes": [1, 2]}}}',
    b'{"classes": {"bolt": {"super_classes": {"a": 1}}}}', b'{"groups": []}', b'{"groups": {"bolt/a.png": null}}',
    b'{"splits": {"bolt/a.png": "nope"}}', b'{"splits": {"bolt/a.png": 3}}', b'{"unknown": 1}',
    b"[" * 100_000, b'{"a": ' * 50_000, b"1e999999",
    b'{"classes": {"\\ud800": {}}}', b"\xef\xbb\xbf{}",
    b'{"classes": {"bolt": {"description": ' + b"[" * 20_000 + b"]" * 20_000 + b"}}}",
    b'{"groups": {"../../etc/passwd": "g"}}', b'{"splits": {"/abs/x.png": "train"}}',
    b'{"groups": {"bolt\\\\..\\\\..\\\\x.png": "g"}}', b'{"groups": {"": "g"}}', b"\x00" * 64,
]
MALFORMED_CSV = [
    b"", b"\xff\xfe\xfa", b"class\n", b"name,tags\nbolt,x\n", b"class,tags\n,x\n", b"class\nbolt\x00nut\n",
    b"class,description\nbolt," + b"x" * 200_000 + b"\n", b'class,description\nbolt,"unterminated\n',
    b"class,tags,extra\nbolt\nnut,a,b,c,d\n", b"\xef\xbb\xbfclass\nbolt\n", b"class,super_classes\nbolt,;;;|||\n",
]
MALFORMED_MANIFEST = [
    b"", b"path\n", b"path,group\n../x.png,g\n", b"path,group\n/etc/passwd,g\n", b"path,group\n,g\n",
    b"path,group\nbolt/a.png\n", b"path,group,split\nbolt/a.png,g,sometimes\n", b"group\nx\n",
    b"path,group\nbolt/a.png,g\x00\n", b"\xff\xff\xff", b"path,group\n" + b"bolt/a.png,g\n" * 2000,
]


def _png(path: Path, size: tuple[int, int] = (8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 30, 200)).save(path)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    _png(root / "bolt" / "a.png")
    _png(root / "nut" / "b.png")
    return root


def _read_folder(**opts) -> str:
    """Everything `dsc subset` asks of the plugin; "ok" or "error: ..." for a DscError."""
    try:
        ds = FolderDataset(FolderDataset.Options(**opts))
        names = [c.name for c in ds.classes()]
        list(ds.records(names))
    except DscError as exc:
        assert "\n" not in str(exc).strip() or isinstance(exc, InputError), repr(exc)
        return f"error: {type(exc).__name__}: {exc}"
    return "ok"


def _read_mvip(root: Path) -> str:
    try:
        ds = MvipDataset(MvipDataset.Options(root=root))
        names = [c.name for c in ds.classes()]
        list(ds.records(names))
    except DscError as exc:
        return f"error: {type(exc).__name__}: {exc}"
    return "ok"


def _mutations(valid: bytes, seed: int, n: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    return [mutate(valid, rng) for _ in range(n)]


# --------------------------------------------------------------------------------------- folder metadata
@pytest.mark.parametrize("content", MALFORMED_JSON, ids=[f"json{i}" for i in range(len(MALFORMED_JSON))])
def test_folder_metadata_json_malformed(tree, content):
    (tree / "metadata.json").write_bytes(content)
    result = _read_folder(root=tree)
    assert result == "ok" or result.startswith("error: InputError"), result


@pytest.mark.parametrize("content", MALFORMED_CSV, ids=[f"csv{i}" for i in range(len(MALFORMED_CSV))])
def test_folder_metadata_csv_malformed(tree, content):
    (tree / "metadata.csv").write_bytes(content)
    result = _read_folder(root=tree)
    assert result == "ok" or result.startswith("error: InputError"), result


@pytest.mark.parametrize("content", MALFORMED_MANIFEST, ids=[f"manifest{i}" for i in range(len(MALFORMED_MANIFEST))])
def test_folder_manifest_malformed(tree, content):
    (tree / "m.csv").write_bytes(content)
    result = _read_folder(root=tree, groups_csv="m.csv", split_column="split" if b"split" in content else None)
    assert result == "ok" or result.startswith("error: InputError"), result


def test_folder_metadata_seeded_mutations(tree):
    results = []
    for name, valid, opts in (("metadata.json", VALID_JSON, {}), ("metadata.csv", VALID_CSV, {}),
                              ("m.csv", VALID_MANIFEST, {"groups_csv": "m.csv", "split_column": "split"})):
        for mutation, blob in _mutations(valid, seed=len(name), n=40):
            (tree / name).write_bytes(blob)
            result = _read_folder(root=tree, **opts)
            assert result == "ok" or result.startswith("error: InputError"), (name, mutation, result)
            results.append(result)
        (tree / name).unlink()
    assert any(r.startswith("error") for r in results) and any(r == "ok" for r in results)


# ------------------------------------------------------------------------------------------ mvip meta
@pytest.fixture(scope="module")
def mvip_root(tmp_path_factory) -> Path:
    return write_fake_mvip(tmp_path_factory.mktemp("mvip") / "m", ["nut"], sets=(1, 0, 0), orientations=1,
                           cameras=1, size=16)


@pytest.mark.parametrize("content", MALFORMED_JSON[:22], ids=[f"meta{i}" for i in range(22)])
def test_mvip_meta_json_malformed(mvip_root, content):
    meta = mvip_root / "nut" / "meta.json"
    original = meta.read_bytes()
    try:
        meta.write_bytes(content)
        result = _read_mvip(mvip_root)
    finally:
        meta.write_bytes(original)
    assert result == "ok" or result.startswith("error: InputError"), result


def test_mvip_meta_seeded_mutations(mvip_root):
    meta = mvip_root / "nut" / "meta.json"
    original = meta.read_bytes()
    try:
        for mutation, blob in _mutations(VALID_META, seed=5, n=40):
            meta.write_bytes(blob)
            result = _read_mvip(mvip_root)
            assert result == "ok" or result.startswith("error: InputError"), (mutation, result)
    finally:
        meta.write_bytes(original)


# ------------------------------------------------------------------------------------ links out of the root
def test_folder_class_dir_linked_outside_root_is_rejected(tree, tmp_path):
    _png(tmp_path / "secret" / "x.png")
    os.symlink(tmp_path / "secret", tree / "linked")
    assert _read_folder(root=tree).startswith("error: InputError: image")
    assert "points outside the dataset root" in _read_folder(root=tree)


def test_folder_mask_linked_outside_mask_root_is_rejected(tree, tmp_path):
    masks = tmp_path / "masks"
    _png(masks / "bolt" / "a.png")
    _png(tmp_path / "secret" / "b.png")
    (masks / "nut").mkdir()
    os.symlink(tmp_path / "secret" / "b.png", masks / "nut" / "b.png")
    result = _read_folder(root=tree, masks=masks)
    assert result.startswith("error: InputError: mask") and "outside the dataset root" in result, result


def test_mvip_set_dir_and_mask_linked_outside_root_are_rejected(tmp_path):
    root = write_fake_mvip(tmp_path / "m", ["nut"], sets=(1, 0, 0), orientations=1, cameras=1, size=16)
    elsewhere = write_fake_mvip(tmp_path / "other", ["nut"], sets=(1, 0, 0), orientations=1, cameras=1, size=16)
    cam = root / "nut" / "train_data" / "0000" / "orientation_0" / "cam_00"
    (cam / "00_rgb_mask_gen.png").unlink()
    os.symlink(elsewhere / "nut" / "train_data" / "0000" / "orientation_0" / "cam_00" / "00_rgb_mask_gen.png",
               cam / "00_rgb_mask_gen.png")
    result = _read_mvip(root)
    assert result.startswith("error: InputError: mask") and "outside the dataset root" in result, result
    (cam / "00_rgb_mask_gen.png").unlink()
    os.symlink(elsewhere / "nut" / "train_data" / "0000", root / "nut" / "train_data" / "0001")
    recs = list(MvipDataset(MvipDataset.Options(root=root)).records(["nut"]))  # linked set: not followed
    assert [r.meta["set"] for r in recs] == ["0000"]
    os.symlink(elsewhere / "nut", root / "bolt")  # a linked class folder is followed, its files are refused
    result = _read_mvip(root)
    assert result.startswith("error: InputError: image") and "outside the dataset root" in result, result


# ---------------------------------------------------------------------------------------------- images
def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (24, 20, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def _png_header_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
            + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


def _check_processed(res, job: Job, what: str) -> None:
    if res.reason is None:
        assert res.image is not None and res.image.shape == (job.resolution, job.resolution, 3), what
        assert res.image.dtype == np.uint8, what
    else:
        assert res.reason in REASONS, (what, res.reason, res.detail)


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("JPEG", ".jpg"), ("BMP", ".bmp"), ("TIFF", ".tif"),
                                         ("WEBP", ".webp")])
def test_mutated_images_become_skip_reasons(tmp_path, fmt, suffix):
    valid = _encoded(fmt)
    job = Job(resolution=16, compress=None)
    reasons = []
    for i, (mutation, blob) in enumerate(_mutations(valid, seed=12, n=30)):  # seed 11: see the test below
        path = tmp_path / f"{i}{suffix}"
        path.write_bytes(blob)
        res = process(Item(i, path), job)
        _check_processed(res, job, f"{fmt} {mutation}")
        reasons.append(res.reason)
    assert any(r is not None for r in reasons)


def test_extreme_aspect_ratio_does_not_allocate_the_padded_square(tmp_path):
    import tracemalloc

    path = tmp_path / "strip.png"
    Image.new("RGB", (4, 4000), (10, 20, 30)).save(path)
    tracemalloc.start()
    res = process(Item(0, path), Job(resolution=16, compress=None))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert res.reason is None and peak < 8 * 4 * 4000 * 3, f"peak {peak / 1e6:.0f} MB"


def test_images_with_huge_declared_size_or_wrong_content(tmp_path):
    job = Job(resolution=16, compress=None)
    cases = {"bomb.png": _png_header_claiming(200_000, 200_000), "zero-dim.png": _png_header_claiming(0, 0),
             "text.png": b"hello", "html.jpg": b"<html></html>", "dir.png": None}
    for name, blob in cases.items():
        path = tmp_path / name
        if blob is None:
            path.mkdir()
        else:
            path.write_bytes(blob)
        res = process(Item(0, path), job)
        assert res.reason in REASONS, (name, res)
    assert process(Item(0, tmp_path / "bomb.png"), job).reason == "too large"


def test_mutated_masks_are_mask_problems(tmp_path):
    image = tmp_path / "img.png"
    image.write_bytes(_encoded("PNG"))
    mask_buf = io.BytesIO()
    Image.fromarray((np.arange(24 * 20).reshape(24, 20) % 2 * 255).astype(np.uint8)).save(mask_buf, "PNG")
    job = Job(resolution=16, compress=None, with_masks=True, crop_to_object=True, dilation=2)
    for i, (mutation, blob) in enumerate(_mutations(mask_buf.getvalue(), seed=3, n=30)):
        mask = tmp_path / f"m{i}.png"
        mask.write_bytes(blob)
        res = process(Item(i, image, mask), job)
        _check_processed(res, job, mutation)
