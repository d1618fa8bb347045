from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as F

from dsc.evaluate.corruptions import CORRUPTIONS, corrupt

# torchvision 0.29 deprecates its JPEG codec in favour of torchcodec; it still works


def _smooth_images(n: int = 4, h: int = 48, w: int = 40) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 17, 13, generator=g)  # not aligned with any pixelate grid
    x = F.resize(x, [h, w], antialias=True)
    return (x * 180 + 40).round().to(torch.uint8)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_shape_dtype_determinism_and_batch_independence(name):
    x = _smooth_images()
    a = corrupt(x, name, 3, seed=1)
    assert a.shape == x.shape and a.dtype == torch.uint8
    assert torch.equal(a, corrupt(x, name, 3, seed=1))
    assert torch.equal(a[2:], corrupt(x[2:], name, 3, seed=1, index=[2, 3]))
    assert not torch.equal(a, x)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_severity_increases_distortion(name):
    x = _smooth_images()
    err = [(corrupt(x, name, s).float() - x.float()).pow(2).mean().item() for s in range(1, 6)]
    assert all(b > a for a, b in zip(err, err[1:], strict=False)), err


def test_seed_changes_random_corruptions_only():
    x = _smooth_images()
    assert not torch.equal(corrupt(x, "gaussian_noise", 2, seed=0), corrupt(x, "gaussian_noise", 2, seed=1))
    assert torch.equal(corrupt(x, "jpeg", 2, seed=0), corrupt(x, "jpeg", 2, seed=1))


def test_jpeg_is_a_real_jpeg_round_trip_without_deprecated_codecs(recwarn):
    """Each image equals its own Pillow JPEG round trip at the severity's quality, and no torchvision
    codec (deprecated since 0.29) is called."""
    import io

    from PIL import Image

    x = _smooth_images()
    out = corrupt(x, "jpeg", 4)
    buf = io.BytesIO()
    Image.fromarray(x[1].permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=10)
    assert torch.equal(out[1], torch.from_numpy(np.asarray(Image.open(buf))).permute(2, 0, 1))
    assert not torch.equal(out, x) and out.shape == x.shape and out.dtype == torch.uint8
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_rejects_bad_input():
    x = _smooth_images()
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(x, "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(x, "jpeg", 6)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(x.float(), "jpeg", 1)
