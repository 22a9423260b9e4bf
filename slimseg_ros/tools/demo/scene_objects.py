"""
The objects of the demo's synthetic street, drawn as polygons in perspective.

Trees, poles with lamps, signs and traffic lights, cars and pedestrians are drawn onto the
shaded planes, each with its CamVid class in the label map. Internal to
:mod:`slimseg_ros.tools.demo.scene`.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

from .scene_street import (CAMERA_HEIGHT_M, CAR, CAR_RGB, COAT_RGB, PEDESTRIAN, POLE, SIGN,
                           TREE, value_noise)

NEAR_M = 0.3  # metres: the camera's near clipping plane


class Canvas:
    """The frame being drawn: projection from camera coordinates and polygon painting."""

    def __init__(self, img: np.ndarray, lab: np.ndarray, f: float, y0: float) -> None:
        self.img, self.lab, self.f, self.y0 = img, lab, f, y0
        self.h, self.w = lab.shape
        self.shift = 4  # sub-pixel precision of OpenCV's polygon filling

    def project(self, x: float, y: float, z: float) -> tuple[float, float]:
        return (self.w / 2 + self.f * x / z, self.y0 + self.f * (CAMERA_HEIGHT_M - y) / z)

    def poly(self, pts: Iterable[tuple[float, float, float]], rgb: Sequence[float] | np.ndarray,
             cls: int | None, texture: float = 0.0, salt: int = 0,
             shade: tuple[float, float] = (1.0, 1.0)) -> None:
        """
        Fill the projection of a planar polygon (camera coordinates, metres).

        The part closer than ``NEAR_M`` (a car being passed) is cut off.
        """
        pts = list(pts)
        kept = []
        for a, b in zip(pts, pts[1:] + pts[:1]):
            if a[2] >= NEAR_M:
                kept.append(a)
            if (a[2] >= NEAR_M) != (b[2] >= NEAR_M):
                t = (NEAR_M - a[2]) / (b[2] - a[2])
                kept.append(tuple(a[k] + t * (b[k] - a[k]) for k in range(3)))
        if len(kept) < 3:
            return
        p = np.array([self.project(*q) for q in kept], np.float64)
        self.fill(p, rgb, cls, texture, salt, shade)

    def fill(self, p: np.ndarray, rgb: Sequence[float] | np.ndarray, cls: int | None,
             texture: float = 0.0, salt: int = 0, shade: tuple[float, float] = (1.0, 1.0)
             ) -> None:
        """
        Fill an image polygon ``p`` (N x 2 pixels) with ``rgb``, optionally textured and shaded.

        ``texture`` is the relative noise amplitude; the shade goes from ``shade[0]`` at its top
        to ``shade[1]`` at its bottom; ``cls`` None leaves the labels alone (shadows).
        """
        x0, y0 = np.floor(p.min(0)).astype(int)
        x1, y1 = np.ceil(p.max(0)).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, self.w), min(y1, self.h)
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        pts = np.round((p - [x0, y0]) * (1 << self.shift)).astype(np.int32)
        cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_AA, shift=self.shift)
        a = mask.astype(np.float32)[:, :, None] / 255.0
        colour = np.broadcast_to(np.asarray(rgb, np.float32), (y1 - y0, x1 - x0, 3))
        if texture:
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            colour = colour * (1 + texture * (value_noise(xx * 0.5, yy * 0.5, salt)
                                              - 0.5))[:, :, None]
        if shade != (1.0, 1.0):
            top, bottom = p[:, 1].min(), p[:, 1].max()
            t = np.clip((np.arange(y0, y1, dtype=np.float32) - top) / max(bottom - top, 1.0),
                        0, 1)
            colour = colour * (shade[0] + (shade[1] - shade[0]) * t)[:, None, None]
        region = self.img[y0:y1, x0:x1]
        region += a * (colour - region)
        if cls is not None:
            self.lab[y0:y1, x0:x1][mask >= 128] = cls


def _tree(c: Canvas, x: float, z: float, params: tuple) -> None:
    radius, trunk_h, salt = params
    rng = np.random.default_rng(salt)
    c.poly([(x - 0.15, 0, z), (x + 0.15, 0, z), (x + 0.12, trunk_h + radius * 0.5, z),
            (x - 0.12, trunk_h + radius * 0.5, z)], (64, 56, 48), TREE, 0.4, salt)
    cy = trunk_h + radius * 0.9
    k = np.arange(28)
    ang = 2 * np.pi * k / len(k)
    wobble = 1 + sum(0.12 * np.sin(m * ang + rng.uniform(0, 6.3)) for m in (3, 5, 7))
    p = np.array([c.project(x + radius * np.cos(a) * r, cy + radius * 0.85 * np.sin(a) * r, z)
                  for a, r in zip(ang, wobble)])
    base = np.array([62, 78, 50], np.float32) * rng.uniform(0.75, 1.25)
    c.fill(p, base, TREE, 0.0)
    # leaves: light and dark clumps inside the crown
    x0, y0 = np.floor(p.min(0)).astype(int)
    x1, y1 = np.ceil(p.max(0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, c.w), min(y1, c.h)
    if x1 > x0 and y1 > y0:
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        scale = max(c.f * 0.35 / z, 1.0)
        leaves = (value_noise(xx / scale, yy / scale, salt) - 0.5) * 0.9 \
            + (value_noise(xx / (3 * scale), yy / (3 * scale), salt + 1) - 0.5) * 0.6
        inside = (c.lab[y0:y1, x0:x1] == TREE)[:, :, None]
        region = c.img[y0:y1, x0:x1]
        region *= np.where(inside, 1 + leaves[:, :, None], 1.0)


def _pole(c: Canvas, x: float, z: float, params: tuple) -> None:
    height, has_sign, salt = params
    rng = np.random.default_rng(salt)
    grey = (rng.uniform(70, 150),) * 3
    c.poly([(x - 0.07, 0, z), (x + 0.07, 0, z), (x + 0.06, height, z), (x - 0.06, height, z)],
           grey, POLE)
    if not has_sign:
        arm = -np.sign(x) * 1.2  # a street lamp leaning over the road
        c.poly([(x, height - 0.1, z), (x + arm, height, z), (x + arm, height + 0.15, z),
                (x, height + 0.05, z)], grey, POLE)
        return
    kind = int(rng.integers(4))
    y, s, zs = rng.uniform(2.2, 2.9), rng.uniform(0.3, 0.42), z - 0.05

    def plate(hx: float, hy: float, cy: float, dz: float, rgb) -> None:
        c.poly([(x - hx, cy - hy, zs - dz), (x + hx, cy - hy, zs - dz),
                (x + hx, cy + hy, zs - dz), (x - hx, cy + hy, zs - dz)], rgb, SIGN)

    if kind == 0:  # round, red-rimmed
        ang = np.linspace(0, 2 * np.pi, 20, endpoint=False)
        c.poly([(x + s * np.cos(a), y + s * np.sin(a), zs) for a in ang], (170, 30, 30), SIGN)
        c.poly([(x + 0.72 * s * np.cos(a), y + 0.72 * s * np.sin(a), zs - 0.01) for a in ang],
               (225, 225, 220), SIGN)
    elif kind == 1:  # a blue direction or parking board with white lettering
        plate(1.4 * s, s, y, 0.0, (30, 62, 150))
        for k in (-0.45, 0.0, 0.45):
            plate(1.0 * s, 0.1 * s, y + k * s, 0.01, (225, 228, 232))
    elif kind == 2:  # a white board with a dark symbol
        plate(s, s, y, 0.0, (215, 215, 210))
        plate(0.55 * s, 0.2 * s, y, 0.01, (30, 30, 30))
    else:  # traffic lights: a dark housing with one lamp lit
        plate(0.17, 0.48, y + 0.5, 0.0, (28, 30, 30))
        lit = int(rng.integers(3))
        for k, lamp in enumerate(((200, 40, 30), (210, 150, 30), (40, 200, 120))):
            ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
            rgb = lamp if k == lit else tuple(v * 0.25 for v in lamp)
            c.poly([(x + 0.1 * np.cos(a), y + 0.82 - 0.31 * k + 0.1 * np.sin(a), zs - 0.01)
                    for a in ang], rgb, SIGN)


def _car(c: Canvas, x: float, z: float, params: tuple) -> None:
    colour, length, height, oncoming = params
    body = CAR_RGB[colour]
    lamp = (225, 222, 205) if oncoming else (150, 28, 26)  # headlights or tail lights
    hw = 0.9
    near, far = z, z + length
    glass, gloss = (58, 64, 72), (1.45, 0.75)   # sky reflected at the top, darker below
    # a soft shadow on the road, the side facing the camera, then the near end over it
    c.poly([(x - hw - 0.15, 0.0, near - 0.2), (x + hw + 0.15, 0.0, near - 0.2),
            (x + hw + 0.15, 0.0, far + 0.2), (x - hw - 0.15, 0.0, far + 0.2)], (20, 20, 22), None)
    sx = x - hw if x > 0 else x + hw
    if abs(x) > hw:
        c.poly([(sx, 0.2, near), (sx, 0.2, far), (sx, 0.95, far), (sx, 0.95, near)],
               body * 0.9, CAR, 0.0, 41, (1.35, 0.7))
        c.poly([(sx, 0.62, near), (sx, 0.62, far), (sx, 0.66, far), (sx, 0.66, near)],
               np.minimum(body * 1.6 + 40, 250), CAR)   # the highlight along the flank
        c.poly([(sx * 0.98, 0.95, near + 0.9), (sx * 0.98, 0.95, far - 0.5),
                (sx * 0.96, height, far - 1.0), (sx * 0.96, height, near + 1.5)], glass, CAR,
               0.2, 45, gloss)
        c.poly([(sx * 0.98, 0.95, near + 2.2), (sx * 0.98, 0.95, near + 2.3),
                (sx * 0.96, height, near + 2.3), (sx * 0.96, height, near + 2.2)],
               body * 0.8, CAR)   # the pillar between the doors
        for wz in (near + 0.85, far - 0.85):
            ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            c.poly([(sx, 0.33 + 0.33 * np.sin(a), wz + 0.33 * np.cos(a)) for a in ang],
                   (18, 18, 20), CAR)
            c.poly([(sx, 0.33 + 0.18 * np.sin(a), wz + 0.18 * np.cos(a)) for a in ang],
                   (120, 122, 126), CAR)

    def panel(x0: float, x1: float, y0: float, y1: float, dz: float, rgb, shade=(1.0, 1.0),
              top_inset: float = 0.0) -> None:
        c.poly([(x + x0, y0, near - dz), (x + x1, y0, near - dz),
                (x + x1 - top_inset, y1, near - dz), (x + x0 + top_inset, y1, near - dz)],
               rgb, CAR, 0.0, 0, shade)

    # the near end: body, boot lid, rear window with the sky in it, lights, plate, bumper
    panel(-hw, hw, 0.05, 0.78, 0.0, body, (1.15, 0.7))
    if c.f * 2 * hw / max(near, NEAR_M) < 20:  # a few pixels wide: details would not show
        panel(-hw * 0.8, hw * 0.8, 0.9, height, 0.01, (70, 80, 92), (1.6, 0.6))
        panel(-hw, hw, 0.58, 0.7, 0.01, lamp)
        return
    panel(-hw, hw, 0.78, 0.97, 0.0, np.minimum(body * 1.25 + 12, 245), (1.2, 0.9), 0.05)
    panel(-hw, hw, 0.92, 0.94, 0.01, np.minimum(body * 1.7 + 50, 250))
    c.poly([(x - hw * 0.85, 0.97, near + 0.35), (x + hw * 0.85, 0.97, near + 0.35),
            (x + hw * 0.68, height - 0.06, near + 0.9),
            (x - hw * 0.68, height - 0.06, near + 0.9)],
           (70, 80, 92), CAR, 0.25, 47, (1.8, 0.55))
    c.poly([(x - hw * 0.68, height - 0.06, near + 0.9), (x + hw * 0.68, height - 0.06, near + 0.9),
            (x + hw * 0.66, height, near + 1.0), (x - hw * 0.66, height, near + 1.0)],
           np.minimum(body * 1.2 + 10, 245), CAR)
    panel(-hw, hw, 0.76, 0.78, 0.01, body * 0.4)      # the gap under the boot lid
    for lx in (-hw + 0.04, hw - 0.42):
        panel(lx, lx + 0.38, 0.58, 0.76, 0.01, lamp, (1.3, 0.8))
        panel(lx + (0.26 if lx < 0 else 0.0), lx + (0.38 if lx < 0 else 0.12), 0.58, 0.65,
              0.015, (200, 120, 40))
    panel(-hw, hw, 0.16, 0.38, 0.01, (42, 42, 46), (1.2, 0.8))
    panel(-0.24, 0.24, 0.4, 0.51, 0.015, (205, 200, 160))
    panel(-hw + 0.1, hw - 0.1, 0.05, 0.16, 0.01, (18, 18, 20))


def _pedestrian(c: Canvas, x: float, z: float, params: tuple) -> None:
    height, coat, salt = params
    rng = np.random.default_rng(salt)
    stride = rng.uniform(-0.2, 0.2)
    trousers = (np.array((30, 30, 36), np.float32) * rng.uniform(0.8, 2.0)).tolist()
    hip, shoulder, neck = height * 0.47, height * 0.82, height * 0.86
    for dx, lean in ((-0.09, stride), (0.09, -stride)):  # legs and shoes
        c.poly([(x + dx - 0.08 + lean, 0.0, z), (x + dx + 0.08 + lean, 0.0, z),
                (x + dx + 0.09, hip, z), (x + dx - 0.09, hip, z)], trousers, PEDESTRIAN,
               0.0, 0, (1.1, 0.8))
        c.poly([(x + dx - 0.09 + lean, 0.0, z - 0.01), (x + dx + 0.11 + lean, 0.0, z - 0.01),
                (x + dx + 0.1 + lean, 0.08, z - 0.01), (x + dx - 0.08 + lean, 0.08, z - 0.01)],
               (20, 20, 22), PEDESTRIAN)
    coat_rgb = COAT_RGB[coat]
    c.poly([(x - 0.2, hip - 0.12, z), (x + 0.2, hip - 0.12, z), (x + 0.24, shoulder - 0.05, z),
            (x + 0.16, neck, z), (x - 0.16, neck, z), (x - 0.24, shoulder - 0.05, z)],
           coat_rgb, PEDESTRIAN, 0.15, salt, (1.2, 0.85))
    for side in (-1, 1):  # arms, swinging against the legs
        swing = -side * stride * 0.5
        c.poly([(x + side * 0.2, shoulder - 0.04, z - 0.01),
                (x + side * 0.29, shoulder - 0.1, z - 0.01),
                (x + side * 0.27 + swing, hip - 0.05, z - 0.01),
                (x + side * 0.19 + swing, hip - 0.05, z - 0.01)], coat_rgb * 0.85, PEDESTRIAN)
    if rng.random() < 0.4:  # a bag
        c.poly([(x + 0.24, hip - 0.3, z - 0.02), (x + 0.42, hip - 0.3, z - 0.02),
                (x + 0.42, hip + 0.05, z - 0.02), (x + 0.24, hip + 0.05, z - 0.02)],
               (40, 30, 25), PEDESTRIAN)
    ang = np.linspace(0, 2 * np.pi, 14, endpoint=False)
    c.poly([(x + 0.095 * np.cos(a), height * 0.93 + 0.115 * np.sin(a), z) for a in ang],
           (176, 136, 112), PEDESTRIAN, 0.0, 0, (0.9, 1.1))
    c.poly([(x + 0.1 * np.cos(a), height * 0.95 + 0.09 * np.sin(a), z - 0.01)
            for a in ang[:8]] + [(x - 0.1, height * 0.93, z - 0.01)],
           (50, 38, 30) if rng.random() < 0.6 else (150, 120, 80), PEDESTRIAN)


DRAW: dict[str, Callable[[Canvas, float, float, tuple], None]] = {
    "tree": _tree, "pole": _pole, "car": _car, "ped": _pedestrian}
