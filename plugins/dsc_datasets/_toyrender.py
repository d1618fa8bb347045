"""Rendering toyparts: one part on a background, with an exact object mask.

An *object* (one physical part) fixes proportions, colour and surface texture; a *view* of it varies pose
(rotation, tilt, mirror), scale, position, lighting, background and sensor noise. Drawing happens at twice
the output size and is box-filtered down, so edges are anti-aliased while the mask stays binary
(mask = 255 where the object covers at least half a pixel).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from dsc_datasets._toyshapes import Part

PALETTE: dict[str, tuple[int, int, int]] = {
    "steel": (165, 168, 172), "dark_steel": (96, 99, 105), "zinc": (196, 172, 96), "brass": (181, 148, 70),
    "copper": (184, 115, 70), "black_oxide": (52, 52, 58), "aluminium": (204, 206, 209),
    "blue_anodised": (62, 92, 165), "red_paint": (172, 44, 38), "green_paint": (52, 112, 64),
    "orange_paint": (214, 124, 44), "white_plastic": (226, 226, 220),
}
TEXTURES = ("plain", "brushed", "speckle", "mottled")
BACKGROUNDS = ("plain", "gradient", "noise", "clutter")


@dataclass(frozen=True)
class Look:
    """Appearance of one physical object."""

    colour_name: str
    colour: tuple[float, float, float]
    texture: str
    texture_amp: float
    texture_freq: float
    texture_angle: float


def object_look(g: np.random.Generator) -> Look:
    name = str(g.choice(list(PALETTE)))
    colour = np.clip(np.array(PALETTE[name], float) + g.uniform(-14, 14, 3), 0, 255)
    texture = str(g.choice(TEXTURES))
    return Look(name, tuple(colour.tolist()), texture, float(g.uniform(0.05, 0.14)),
                float(g.uniform(8, 30)), float(g.uniform(0, np.pi)))


@lru_cache(maxsize=4)
def _grid(s: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:s, 0:s].astype(np.float32)
    return x, y


def _random_colour(g: np.random.Generator) -> np.ndarray:
    c = g.uniform(15, 240, 3)
    grey = c.mean()
    return grey + (c - grey) * g.uniform(0.15, 1.0)


def _smooth_noise(g: np.random.Generator, s: int, cells: int, channels: int) -> np.ndarray:
    """Low-frequency noise in [0, 1], shape (s, s, channels)."""
    low = (g.random((cells, cells, channels)) * 255).astype(np.uint8)
    img = Image.fromarray(low.squeeze(-1) if channels == 1 else low).resize((s, s), Image.BILINEAR)
    return np.asarray(img, np.float32).reshape(s, s, channels) / 255.0


def background(g: np.random.Generator, s: int) -> tuple[np.ndarray, str]:
    kind = str(g.choice(BACKGROUNDS))
    x, y = _grid(s)
    c1 = _random_colour(g)
    if kind == "plain":
        bg = np.empty((s, s, 3), np.float32)
        bg[:] = c1
    elif kind == "noise":
        n = _smooth_noise(g, s, int(g.integers(3, 9)), 3)
        n = 0.6 * n.mean(-1, keepdims=True) + 0.4 * n  # muted colours
        bg = (0.55 * c1 + 0.45 * 255 * n).astype(np.float32)
    else:
        c2 = _random_colour(g)
        a = g.uniform(0, 2 * np.pi)
        t = ((x - s / 2) * np.cos(a) + (y - s / 2) * np.sin(a)) / s + 0.5
        t = np.clip(t, 0, 1)[..., None]
        bg = (c1 * (1 - t) + c2 * t).astype(np.float32)
    if kind == "clutter":
        img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(int(g.integers(5, 14))):
            cx, cy = g.uniform(0, s, 2)
            r = g.uniform(0.03, 0.18) * s
            fill = tuple(int(v) for v in _random_colour(g))
            shape = int(g.integers(0, 3))
            if shape == 0:
                draw.rectangle([cx - r, cy - r * g.uniform(0.2, 1), cx + r, cy + r * g.uniform(0.2, 1)], fill=fill)
            elif shape == 1:
                draw.ellipse([cx - r, cy - r, cx + r, cy + r * g.uniform(0.3, 1)], fill=fill)
            else:
                x2, y2 = g.uniform(0, s, 2)
                draw.line([cx, cy, x2, y2], fill=fill, width=max(1, int(r / 4)))
        bg = np.asarray(img, np.float32)
    return bg, kind


def _texture(look: Look, g: np.random.Generator, s: int, angle: float) -> np.ndarray:
    x, y = _grid(s)
    if look.texture == "brushed":
        a = look.texture_angle + angle
        phase = g.uniform(0, 2 * np.pi)
        u = (x * np.cos(a) + y * np.sin(a)) / s * look.texture_freq * 2 * np.pi
        return 1 + look.texture_amp * np.sin(u + phase)
    if look.texture == "speckle":
        return 1 + look.texture_amp * g.standard_normal((s, s)).astype(np.float32)
    if look.texture == "mottled":
        return 1 + 2 * look.texture_amp * (_smooth_noise(g, s, 6, 1)[..., 0] - 0.5)
    return np.ones((s, s), np.float32)


def render(part: Part, look: Look, g: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """One view: (image HxWx3 uint8, mask HxW uint8 0/255, view description)."""
    s = 2 * size
    theta, tilt = g.uniform(0, 2 * np.pi), g.uniform(0.55, 1.0)
    flip = -1.0 if g.random() < 0.5 else 1.0
    radius = s * g.uniform(0.27, 0.44)
    room = max(s / 2 - radius * 0.95, 0.0)
    centre = s / 2 + g.uniform(-room, room, 2)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    matrix = rot @ np.diag([flip, tilt]) * radius

    obj = Image.new("RGB", (s, s))
    alpha = Image.new("L", (s, s), 0)
    d_obj, d_alpha = ImageDraw.Draw(obj), ImageDraw.Draw(alpha)
    base = np.array(look.colour)
    for kind, pts, shade, cut, width in part.prims:
        xy = [tuple(p) for p in (pts @ matrix.T + centre).tolist()]
        colour = shade if isinstance(shade, tuple) else tuple(int(v) for v in np.clip(base * shade, 0, 255))
        if kind == "line":
            w = max(1, int(round(width * radius)))
            d_obj.line(xy, fill=colour, width=w, joint="curve")
            d_alpha.line(xy, fill=255, width=w, joint="curve")
            for end in (xy[0], xy[-1]):  # round caps
                d_obj.ellipse([end[0] - w / 2, end[1] - w / 2, end[0] + w / 2, end[1] + w / 2], fill=colour)
                d_alpha.ellipse([end[0] - w / 2, end[1] - w / 2, end[0] + w / 2, end[1] + w / 2], fill=255)
        elif cut:
            d_obj.polygon(xy, fill=(0, 0, 0))
            d_alpha.polygon(xy, fill=0)
        else:
            d_obj.polygon(xy, fill=colour)
            d_alpha.polygon(xy, fill=255)

    # Everything below runs at the output size: the object layer is black outside the object, so its
    # box-filtered version is premultiplied by the (soft) coverage ``a``.
    alpha_small = alpha.reduce(2)
    a = np.asarray(alpha_small, np.float32)[..., None] / 255
    fg = np.asarray(obj.reduce(2), np.float32)
    cx, cy, r = centre[0] / 2, centre[1] / 2, radius / 2
    x, y = _grid(size)
    light_angle = g.uniform(0, 2 * np.pi)
    brightness, grad = g.uniform(0.75, 1.2), g.uniform(0.0, 0.3)
    light = brightness * (1 + grad * ((x - cx) * np.cos(light_angle) + (y - cy) * np.sin(light_angle)) / r)
    fg *= (_texture(look, g, size, theta) * light)[..., None]

    bg, bg_kind = background(g, size)
    shift = (-np.array([np.cos(light_angle), np.sin(light_angle)]) * r * g.uniform(0.03, 0.1)).astype(int)
    shadow = alpha_small.transform((size, size), Image.AFFINE, (1, 0, -shift[0], 0, 1, -shift[1]))
    shadow = shadow.filter(ImageFilter.BoxBlur(max(1, size // 60)))
    bg *= 1 - np.float32(g.uniform(0.25, 0.5) / 255) * np.asarray(shadow, np.float32)[..., None]

    comp = fg + bg * (1 - a)
    comp += g.normal(0, g.uniform(0.5, 5.0), comp.shape).astype(np.float32)
    image = np.clip(comp, 0, 255).round().astype(np.uint8)
    mask = np.where(np.asarray(alpha_small) >= 128, 255, 0).astype(np.uint8)
    info = {"background": bg_kind, "rotation_deg": round(float(np.degrees(theta)), 1),
            "tilt": round(float(tilt), 3), "mirrored": flip < 0}
    return image, mask, info
