"""Geometry of the toyparts classes: each part is a list of drawing primitives in object coordinates.

Object coordinates put the part inside roughly [-1, 1] x [-1, 1]. A primitive adds material (with a shade:
a brightness multiplier of the object's colour, or a fixed RGB colour) or cuts a hole. Proportions come from
the object's random generator, so every physical object of a class looks a little different.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Shade = float | tuple[int, int, int]


@dataclass
class Part:
    """Primitives in drawing order: ``("poly"|"line", points, shade, cut, width)``."""

    prims: list[tuple[str, np.ndarray, Shade, bool, float]] = field(default_factory=list)

    def add(self, pts: np.ndarray, shade: Shade = 1.0) -> Part:
        self.prims.append(("poly", np.asarray(pts, float), shade, False, 0.0))
        return self

    def cut(self, pts: np.ndarray) -> Part:
        self.prims.append(("poly", np.asarray(pts, float), 1.0, True, 0.0))
        return self

    def line(self, pts: np.ndarray, width: float, shade: Shade = 1.0) -> Part:
        self.prims.append(("line", np.asarray(pts, float), shade, False, width))
        return self


def circle(r: float, cx: float = 0.0, cy: float = 0.0, n: int = 48) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def polar(radii: np.ndarray, angles: np.ndarray) -> np.ndarray:
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)


def ring_of(n: int, radius: float, hole: float, phase: float = 0.0) -> list[np.ndarray]:
    return [circle(hole, radius * np.cos(a), radius * np.sin(a), 20)
            for a in phase + np.arange(n) * 2 * np.pi / n]


# ------------------------------------------------------------------------------------------------ parts
def gear(g: np.random.Generator) -> Part:
    n = int(g.integers(10, 20))
    root, pitch = g.uniform(0.74, 0.82), 2 * np.pi / n
    ang, rad = [], []
    for k in range(n):  # trapezoid teeth: flat tips
        a = k * pitch
        ang += [a, a + 0.18 * pitch, a + 0.42 * pitch, a + 0.6 * pitch]
        rad += [root, 1.0, 1.0, root]
    p = Part().add(polar(np.array(rad), np.array(ang)))
    p.add(circle(root - 0.06), 0.82)
    if g.random() < 0.6:
        for h in ring_of(int(g.integers(4, 7)), 0.5 * root + 0.15, 0.11):
            p.cut(h)
    p.add(circle(0.3), 1.12).cut(circle(g.uniform(0.1, 0.17), n=24))
    return p.cut(rect(-0.04, 0.1, 0.04, 0.2))


def sprocket(g: np.random.Generator) -> Part:
    n = int(g.integers(20, 30))
    valley, pitch = 0.86, 2 * np.pi / n
    ang, rad = [], []
    for k in range(n):  # pointed teeth, round valleys
        a = k * pitch
        ang += [a, a + 0.15 * pitch, a + 0.5 * pitch, a + 0.85 * pitch]
        rad += [valley, valley + 0.02, 1.0, valley + 0.02]
    p = Part().add(polar(np.array(rad), np.array(ang)), 1.05)
    for h in ring_of(int(g.integers(3, 6)), 0.52, g.uniform(0.14, 0.2), g.uniform(0, 1)):
        p.cut(h)
    return p.add(circle(0.26), 0.9).cut(circle(0.12, n=24))


def washer(g: np.random.Generator) -> Part:
    inner = g.uniform(0.38, 0.6)
    return Part().add(circle(1.0, n=64)).add(circle(inner + 0.08), 0.85).cut(circle(inner, n=40))


def nut(g: np.random.Generator) -> Part:
    hexagon = circle(1.0, n=6)
    bore = g.uniform(0.42, 0.55)
    p = Part().add(hexagon, 0.8).add(circle(0.84), 1.08)
    return p.add(circle(bore + 0.1), 0.65).cut(circle(bore, n=32))


def bolt(g: np.random.Generator) -> Part:
    head, half = g.uniform(0.22, 0.32), g.uniform(0.13, 0.19)
    x0 = -1.0 + head
    p = Part().add(rect(-1.0, -0.45, x0, 0.45), 0.85)
    p.add(rect(-1.0, -0.15, x0, 0.15), 1.1)
    p.add(np.array([[x0, -half], [0.92, -half], [1.0, -half + 0.06], [1.0, half - 0.06], [0.92, half], [x0, half]]))
    start = g.uniform(-0.5, 0.1)
    for x in np.arange(start, 0.95, 0.075):  # thread crests
        p.add(np.array([[x, -half], [x + 0.03, -half], [x + 0.06, half], [x + 0.03, half]]), 0.6)
    return p


def spring(g: np.random.Generator) -> Part:
    coils, amp, wire = int(g.integers(5, 10)), g.uniform(0.3, 0.45), g.uniform(0.07, 0.11)
    phi = np.linspace(0, 2 * np.pi * coils, coils * 24)
    x = -0.9 + 1.8 * phi / phi[-1] + 0.1 * np.sin(phi)
    y = amp * np.cos(phi)
    back = np.sin(phi) < 0
    p = Part()
    for mask, shade in ((back, 0.6), (~back, 1.1)):
        idx = np.flatnonzero(mask)
        for seg in np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1):
            if len(seg) > 1:
                lo, hi = max(seg[0] - 1, 0), min(seg[-1] + 2, len(phi))
                p.line(np.stack([x[lo:hi], y[lo:hi]], 1), wire, shade)
    return p


def bearing(g: np.random.Generator) -> Part:
    p = Part().add(circle(1.0, n=64), 1.05).add(circle(0.86), 0.8).cut(circle(0.8, n=64))
    if g.random() < 0.4:  # sealed: a dark shield between the rings
        p.add(circle(0.8, n=64), (30, 30, 34))
    else:
        for b in ring_of(int(g.integers(7, 12)), 0.675, 0.11):
            p.add(b, 1.25)
    p.add(circle(0.55), 1.05).add(circle(0.45), 0.85)
    return p.cut(circle(g.uniform(0.3, 0.38), n=32))


def pulley(g: np.random.Generator) -> Part:
    p = Part().add(circle(1.0, n=64), 0.9).add(circle(0.92, n=64), 0.55).add(circle(0.84, n=64), 1.0)
    p.add(circle(0.78, n=64), 0.8)
    if g.random() < 0.5:
        for h in ring_of(int(g.integers(4, 7)), 0.52, g.uniform(0.12, 0.17)):
            p.cut(h)
    else:
        k, phase = int(g.integers(3, 6)), g.uniform(0, 1)
        for i in range(k):  # windows between spokes
            a0 = phase + i * 2 * np.pi / k + 0.25
            a = np.linspace(a0, a0 + 2 * np.pi / k - 0.5, 10)
            p.cut(np.concatenate([polar(np.full(10, 0.72), a), polar(np.full(10, 0.36), a[::-1])]))
    return p.add(circle(0.3), 1.1).cut(circle(0.12, n=24))


def hex_key(g: np.random.Generator) -> Part:
    short, w = g.uniform(0.45, 0.75), g.uniform(0.14, 0.2)
    pts = np.array([[-1.0, 0.45], [0.55, 0.45], [0.75, 0.25], [0.75, 0.25 - short]])
    return Part().line(pts, w, 0.9).line(pts + [0, -w * 0.2], w * 0.35, 1.3)


def shaft(g: np.random.Generator) -> Part:
    steps = np.sort(g.uniform(-0.7, 0.7, size=int(g.integers(1, 4))))
    edges = np.concatenate([[-1.0], steps, [1.0]])
    p = Part()
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        h = g.uniform(0.1, 0.24)
        p.add(rect(a, -h, b, h), 0.85).add(rect(a, -h * 0.55, b, -h * 0.15), 1.3)
    lo = int(np.argmax(np.diff(edges)))
    a, b = edges[lo], edges[lo + 1]
    return p.line(np.array([[a + 0.1 * (b - a), 0.03], [a + 0.6 * (b - a), 0.03]]), 0.06, 0.35)


def flange(g: np.random.Generator) -> Part:
    p = Part().add(circle(1.0, n=64), 0.95).add(circle(0.5), 0.8).add(circle(0.44), 1.12)
    for h in ring_of(int(g.integers(4, 9)), 0.74, g.uniform(0.07, 0.1), g.uniform(0, 1)):
        p.cut(h)
    return p.cut(circle(g.uniform(0.2, 0.3), n=32))


def brake_disc(g: np.random.Generator) -> Part:
    p = Part().add(circle(1.0, n=72), 0.9).add(circle(0.97, n=72), 1.0)
    n = int(g.integers(14, 22))
    for r, phase in ((0.66, 0.0), (0.76, 0.5), (0.86, 1.0)):
        for h in ring_of(n, r, 0.035, phase * np.pi / n):
            p.cut(h)
    p.add(circle(0.52), 1.15).add(circle(0.44), 0.95)
    for h in ring_of(5, 0.31, 0.05):
        p.cut(h)
    return p.cut(circle(0.17, n=24))


def bracket(g: np.random.Generator) -> Part:
    kind = int(g.integers(0, 3))
    if kind == 0:  # L bracket seen from the front
        outline = np.array([[-1, -1], [-0.55, -1], [-0.55, 0.55], [1, 0.55], [1, 1], [-1, 1]], float)
        holes = [(-0.78, -0.6), (-0.78, -0.1), (0.1, 0.78), (0.65, 0.78)]
        fold = rect(-0.62, 0.48, -0.48, 1.0)
    elif kind == 1:  # T bracket
        outline = np.array([[-1, 0.55], [-0.22, 0.55], [-0.22, -1], [0.22, -1], [0.22, 0.55], [1, 0.55],
                            [1, 1], [-1, 1]], float)
        holes = [(-0.7, 0.78), (0.7, 0.78), (0, -0.5), (0, 0.1)]
        fold = rect(-0.22, 0.48, 0.22, 0.6)
    else:  # angle plate with a slot
        outline = np.array([[-1, -0.35], [0.35, -0.35], [1, 0.3], [1, 0.75], [-1, 0.75]], float)
        holes = [(-0.75, 0.2), (0.75, 0.52)]
        fold = rect(-1, 0.0, 0.45, 0.08)
    p = Part().add(outline, 0.95).add(fold, 0.7)
    for hx, hy in holes:
        p.cut(circle(0.09, hx, hy, 20))
    if kind == 2:  # a slot with round ends
        p.cut(rect(-0.4, 0.27, 0.2, 0.43)).cut(circle(0.08, -0.4, 0.35, 20)).cut(circle(0.08, 0.2, 0.35, 20))
    return p


def circlip(g: np.random.Generator) -> Part:
    gap, width = g.uniform(0.35, 0.6), g.uniform(0.14, 0.22)
    a = np.linspace(gap / 2, 2 * np.pi - gap / 2, 60)
    band = np.concatenate([polar(np.full(60, 1.0), a), polar(np.full(60, 1.0 - width), a[::-1])])
    p = Part().add(band)
    for s in (1, -1):
        cx, cy = 0.82 * np.cos(s * gap / 2 + s * 0.25), 0.82 * np.sin(s * gap / 2 + s * 0.25)
        p.add(circle(0.17, cx, cy, 24), 0.9).cut(circle(0.07, cx, cy, 16))
    return p


def piston(g: np.random.Generator) -> Part:
    w, grooves = g.uniform(0.62, 0.75), int(g.integers(2, 4))
    p = Part().add(np.array([[-w, -1], [w, -1], [w, 0.6], [w - 0.08, 1], [-w + 0.08, 1], [-w, 0.6]]), 1.0)
    p.add(rect(-w, -1, w, -0.9), 1.2)
    for i in range(grooves):
        y = -0.8 + i * 0.13
        p.add(rect(-w, y, w, y + 0.05), 0.4)
    p.add(circle(0.24, 0, 0.25, 32), 0.75).cut(circle(0.12, 0, 0.25, 24))
    return p.add(rect(-w + 0.05, -0.35, w - 0.05, -0.3), 0.8)


def spark_plug(g: np.random.Generator) -> Part:
    ribs = int(g.integers(3, 6))
    ceramic = tuple(int(v) for v in g.integers(215, 245, size=3))
    p = Part().add(rect(-1.0, -0.07, -0.86, 0.07), 0.9)
    p.add(rect(-0.86, -0.16, -0.18, 0.16), ceramic)
    for i in range(ribs):
        x = -0.8 + i * 0.5 / ribs
        p.add(rect(x, -0.16, x + 0.03, 0.16), (170, 170, 165))
    p.add(circle(0.28, n=6) * [0.55, 1.0] + [0.0, 0.0], 0.85)
    p.add(rect(-0.18, -0.28, 0.18, 0.28), 0.95)
    p.add(rect(0.18, -0.15, 0.82, 0.15), 1.05)
    for x in np.arange(0.22, 0.8, 0.06):
        p.add(np.array([[x, -0.15], [x + 0.02, -0.15], [x + 0.05, 0.15], [x + 0.03, 0.15]]), 0.6)
    return p.line(np.array([[0.82, 0.1], [0.95, 0.1], [0.95, -0.02]]), 0.05, 0.8)


@dataclass(frozen=True)
class PartClass:
    name: str
    draw: Callable[[np.random.Generator], Part]
    super_classes: tuple[str, ...]
    tags: tuple[str, ...]
    description: str


CATALOGUE: tuple[PartClass, ...] = (
    PartClass("gear", gear, ("PowerTransmission",), ("round", "toothed", "holes"),
              "a spur gear with flat-topped teeth, a hub and a keyed bore"),
    PartClass("washer", washer, ("Fastener",), ("round", "flat"), "a flat round washer with a large hole"),
    PartClass("bolt", bolt, ("Fastener",), ("elongated", "threaded", "hexagonal"),
              "a hex-head bolt seen from the side, with a threaded shank"),
    PartClass("spring", spring, ("Suspension", "CarComponent"), ("elongated", "coiled"),
              "a helical coil spring seen from the side"),
    PartClass("bracket", bracket, ("Structural",), ("flat", "holes", "bent"),
              "a bent sheet-metal mounting bracket with holes"),
    PartClass("bearing", bearing, ("PowerTransmission", "CarComponent"), ("round", "rolling-element"),
              "a ball bearing with inner and outer rings"),
    PartClass("nut", nut, ("Fastener",), ("hexagonal", "threaded"), "a hexagon nut seen from above"),
    PartClass("pulley", pulley, ("PowerTransmission", "CarComponent"), ("round", "grooved"),
              "a belt pulley with a grooved rim and spokes"),
    PartClass("hex_key", hex_key, ("Tool",), ("elongated", "hexagonal", "bent"),
              "an L-shaped hexagon key (Allen key)"),
    PartClass("shaft", shaft, ("PowerTransmission",), ("elongated", "cylindrical"),
              "a stepped drive shaft with a keyway"),
    PartClass("flange", flange, ("Structural",), ("round", "holes"),
              "a round flange with a bolt circle and a raised hub"),
    PartClass("sprocket", sprocket, ("PowerTransmission",), ("round", "toothed"),
              "a chain sprocket with pointed teeth and lightening holes"),
    PartClass("circlip", circlip, ("Fastener",), ("round", "flat", "open"),
              "an open retaining ring (circlip) with two lugs"),
    PartClass("piston", piston, ("Engine", "CarComponent"), ("cylindrical", "grooved"),
              "an engine piston seen from the side, with ring grooves and a pin bore"),
    PartClass("spark_plug", spark_plug, ("Engine", "CarComponent"), ("elongated", "threaded", "ceramic"),
              "a spark plug with a ribbed white insulator, a hex and a threaded tip"),
    PartClass("brake_disc", brake_disc, ("Brake", "CarComponent"), ("round", "holes"),
              "a cross-drilled brake disc with five lug holes"),
)
