"""
The street of the demo's synthetic drive: layout, shading, and the camera's optics and sensor.

The shading is per pixel, of sky, facades and ground. Internal to
:mod:`slimseg_ros.tools.demo.scene`, which draws the frames; the objects on the street are in
:mod:`slimseg_ros.tools.demo.scene_objects`.

Units: metres in the world (X to the right of the camera, Y up from the road, Z along the
street), pixels in the frame, colours RGB 0-255.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

# CamVid 11-class ids of the packaged model (its checkpoint's class_names, in this order)
CLASS_NAMES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence",
               "Car", "Pedestrian", "Bicyclist")
SKY, BUILDING, POLE, ROAD, PAVEMENT, TREE, SIGN, FENCE, CAR, PEDESTRIAN, BICYCLIST = range(11)
IGNORE_LABEL = 255

FRAMES_PER_STREET = 150      # frames along one street before the next street starts
STEP_M = 0.6                 # metres the camera moves per frame (6 m/s at the demo's 10 fps)
CAMERA_HEIGHT_M = 1.3
MIN_SIZE = 32                # pixels; smaller frames cannot hold the scene's structure
VIEW_M = 160.0               # objects beyond this distance are not drawn (sub-pixel)
_STREET_M = FRAMES_PER_STREET * STEP_M + 2 * VIEW_M


@dataclass(frozen=True)
class Street:
    """One street: cross-section in metres (X to the right of the camera) and its buildings."""

    road_left: float                  # X of the left curb (negative)
    road_right: float                 # X of the right curb
    centre: float                     # X of the dashed centre line
    wall_left: float                  # X of the left facade plane (negative)
    wall_right: float
    double_yellow: bool
    sky_top: np.ndarray               # RGB at the top of the frame
    sky_horizon: np.ndarray           # RGB at the horizon
    road_rgb: np.ndarray
    pavement_rgb: np.ndarray
    shade_left: float                 # brightness of each facade side (overcast, one side darker)
    shade_right: float
    horizon: float                    # horizon row as a fraction of the height
    cast: np.ndarray                  # white balance of the camera on this street
    buildings: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]  # left, right
    objects: tuple[tuple, ...]        # (kind, X, Z, params) for the sprites


_FACADE_RGB = np.array([[128, 78, 62], [98, 70, 60], [160, 146, 122], [196, 194, 186],
                        [120, 120, 118], [178, 164, 138], [82, 78, 74], [150, 104, 78]],
                       np.float32)
_BRICK_STYLES = (0, 1, 7)     # rows of _FACADE_RGB that are brick (the rest render or stone)
CAR_RGB = np.array([[26, 27, 30], [30, 40, 76], [110, 20, 20], [200, 200, 204], [38, 56, 44],
                    [86, 28, 38], [150, 152, 160], [20, 28, 58]], np.float32)
COAT_RGB = np.array([[30, 30, 34], [50, 45, 40], [40, 48, 70], [80, 30, 30], [70, 70, 72]],
                    np.float32)


def _buildings(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """
    Lay out terraced buildings along one side of the street, as arrays indexed by building.

    Lengths and heights are in metres, colours RGB.
    """
    rows: dict[str, list] = {k: [] for k in ("start", "height", "floor_h", "ground", "spacing",
                                             "win_frac", "win_h", "shop", "offset", "brick",
                                             "bands", "rgb", "fascia")}
    start = -20.0
    while start < _STREET_M:
        floor_h = float(rng.uniform(2.9, 3.5))
        ground = float(rng.uniform(3.4, 4.2))
        style = int(rng.integers(len(_FACADE_RGB)))
        for key, value in (
                ("start", start), ("floor_h", floor_h), ("ground", ground),
                ("height", ground + int(rng.integers(1, 4)) * floor_h + rng.uniform(0.3, 1.2)),
                ("spacing", rng.uniform(2.4, 3.8)), ("win_frac", rng.uniform(0.42, 0.6)),
                ("win_h", rng.uniform(1.3, 1.8)), ("shop", float(rng.random() < 0.55)),
                ("offset", rng.uniform(0.0, 1.0)), ("brick", float(style in _BRICK_STYLES)),
                ("bands", float(rng.random() < 0.5)),
                ("rgb", _FACADE_RGB[style] * rng.uniform(0.85, 1.1) * rng.uniform(0.97, 1.03, 3)),
                ("fascia", _FACADE_RGB[style] * rng.uniform(0.35, 0.6))):
            rows[key].append(value)
        start += float(rng.uniform(6.0, 22.0))
    return {k: np.array(v, np.float32) for k, v in rows.items()}


def _kerb_objects(rng: np.random.Generator, side: int, curb: float, pavement: float,
                  parking: bool) -> list[tuple]:
    """
    Place trees, poles with lamps or signs, pedestrians and parked cars along one kerb.

    Parked cars only where there is a parking strip. Each object is ``(kind, X, Z, params)`` in
    metres, Z along the street.
    """
    objects: list[tuple] = []
    z = float(rng.uniform(0, 8))
    while z < _STREET_M:
        kind = str(rng.choice(["tree", "pole", "ped", "car", "sign"],
                              p=[0.22, 0.18, 0.16, 0.3, 0.14]))
        salt = int(rng.integers(1 << 30))
        if kind == "tree":
            objects.append(("tree", curb + side * rng.uniform(0.8, 1.4), z,
                            (rng.uniform(1.6, 3.2), rng.uniform(2.2, 3.4), salt)))
        elif kind in ("pole", "sign"):
            objects.append(("pole", curb + side * 0.4, z,
                            (rng.uniform(4.5, 8.0), kind == "sign" or rng.random() < 0.35, salt)))
        elif kind == "ped":
            objects.append(("ped", curb + side * rng.uniform(0.8, max(0.9, pavement - 0.4)), z,
                            (rng.uniform(1.6, 1.85), int(rng.integers(len(COAT_RGB))), salt)))
        elif parking:
            objects.append(("car", curb - side * 1.05, z,
                            (int(rng.integers(len(CAR_RGB))), rng.uniform(3.9, 4.7),
                             rng.uniform(1.4, 1.6), False)))
        gap = (5.0, 5.0) if kind == "car" else (7.0, 1.0)  # mean spacing, minimum (metres)
        z += float(rng.exponential(gap[0])) + gap[1]
    return objects


@lru_cache(maxsize=4)
def street_layout(seed: int, number: int) -> Street:
    """
    Return street ``number`` of the drive: its cross-section, buildings and objects.

    Cached: the demo draws ``FRAMES_PER_STREET`` frames of each; nothing writes to it.
    """
    rng = np.random.default_rng([seed, number, 11])
    lane = float(rng.uniform(2.9, 3.6))
    parking = rng.random(2) < 0.8             # a strip of parked cars along each kerb
    strips = np.where(parking, 2.2, 0.0)
    left_lane = rng.random() < 0.7            # UK streets (CamVid): the camera drives on the left
    # the camera (X = 0) sits in the middle of its lane
    road_left = -lane / 2 - float(strips[0]) - (0.0 if left_lane else lane)
    centre = road_left + float(strips[0]) + lane
    road_right = centre + lane + float(strips[1])
    pavements = rng.uniform(1.8, 4.2, 2)
    overcast = float(rng.uniform(0.0, 1.0))
    sky_top = np.array([206, 226, 234], np.float32) * (1 - overcast) \
        + np.array([232, 240, 240], np.float32) * overcast
    objects = (_kerb_objects(rng, -1, road_left, float(pavements[0]), bool(parking[0]))
               + _kerb_objects(rng, 1, road_right, float(pavements[1]), bool(parking[1])))
    oncoming = centre + (lane / 2 if left_lane else -lane / 2)
    z = float(rng.uniform(10, 40))
    while z < _STREET_M:  # traffic in the other lane, standing still for the drawing
        objects.append(("car", oncoming + rng.uniform(-0.3, 0.3), z,
                        (int(rng.integers(len(CAR_RGB))), rng.uniform(3.9, 4.7),
                         rng.uniform(1.4, 1.6), True)))
        z += float(rng.exponential(30.0)) + 8.0
    return Street(
        road_left=road_left, road_right=road_right, centre=centre,
        wall_left=road_left - float(pavements[0]), wall_right=road_right + float(pavements[1]),
        double_yellow=bool(rng.random() < 0.5), sky_top=sky_top,
        sky_horizon=np.array([244, 252, 252], np.float32) * rng.uniform(0.97, 1.01),
        road_rgb=np.array([78, 80, 85], np.float32) * rng.uniform(0.85, 1.1),
        pavement_rgb=np.array([104, 100, 96], np.float32) * rng.uniform(0.85, 1.15),
        shade_left=float(rng.uniform(0.6, 1.0)), shade_right=float(rng.uniform(0.6, 1.0)),
        horizon=float(rng.uniform(0.44, 0.52)),
        cast=rng.uniform(0.97, 1.03, 3).astype(np.float32),
        buildings=(_buildings(rng), _buildings(rng)), objects=tuple(objects))


# ----------------------------------------------------------------------------------------------
# Per-pixel texture helpers (world coordinates in, values out)
# ----------------------------------------------------------------------------------------------

_HX, _HY, _HS, _HM = (np.uint32(73856093), np.uint32(19349663), np.uint32(83492791),
                      np.uint32(1274126177))  # large odd constants of spatial hashing


def _mix(h: np.ndarray) -> np.ndarray:
    """Scramble 32-bit lattice keys into values in [0, 1) (wrapping uint32 arithmetic)."""
    h = (h ^ (h >> np.uint32(13))) * _HM
    return ((h ^ (h >> np.uint32(16))) & np.uint32(0xFFFF)).astype(np.float32) * (1 / 65536.0)


def _salt(salt: int) -> np.uint32:
    return np.uint32((salt * int(_HS)) & 0xFFFFFFFF)


def _keys(v: np.ndarray, k: np.uint32) -> np.ndarray:
    return v.astype(np.int32).view(np.uint32) * k


def _hash01(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """Return a repeatable pseudo-random value in [0, 1) per integer lattice point."""
    return _mix(_keys(ix, _HX) ^ _keys(iy, _HY) ^ _salt(salt))


def value_noise(x: np.ndarray, y: np.ndarray, salt: int) -> np.ndarray:
    """Return smooth noise in [0, 1), bilinearly interpolated lattice values (scale 1 = 1 unit)."""
    ix, iy = np.floor(x), np.floor(y)
    fx, fy = x - ix, y - iy
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    kx0, kx1 = _keys(ix, _HX) ^ _salt(salt), _keys(ix + 1, _HX) ^ _salt(salt)
    ky0, ky1 = _keys(iy, _HY), _keys(iy + 1, _HY)
    a, b, c, d = _mix(kx0 ^ ky0), _mix(kx1 ^ ky0), _mix(kx0 ^ ky1), _mix(kx1 ^ ky1)
    return (a + (b - a) * fx) * (1 - fy) + (c + (d - c) * fx) * fy


def _band(coord: np.ndarray, lo: float | np.ndarray, hi: float | np.ndarray,
          footprint: np.ndarray) -> np.ndarray:
    """
    Return the pixel coverage in [0, 1] of the interval [lo, hi) along ``coord``.

    The pixels cover ``footprint`` world units; the coverage is anti-aliased, so thin far lines
    fade instead of flickering.
    """
    half = 0.5 * footprint
    covered = np.minimum(coord + half, hi) - np.maximum(coord - half, lo)
    return np.clip(covered / np.maximum(footprint, 1e-6), 0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Planes: sky, facades, ground
# ----------------------------------------------------------------------------------------------

def _building_at(st: Street, side: int, zw: np.ndarray) -> np.ndarray:
    """Return the index of the building on ``side`` (0 left, 1 right) at each position ``zw``."""
    starts = st.buildings[side]["start"]
    return np.clip(np.searchsorted(starts, zw, side="right") - 1, 0, len(starts) - 1)


def _facade(st: Street, side: int, i: np.ndarray, zw: np.ndarray, y: np.ndarray,
            fz: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """
    Return the colour (N x 3) of the walls of buildings ``i``.

    At street position ``zw`` and height ``y`` (metres), for pixel footprints ``fz`` x ``fy``
    metres.
    """
    b = st.buildings[side]
    local = zw - b["start"][i]
    height, ground, floor_h = b["height"][i], b["ground"][i], b["floor_h"][i]
    spacing, win_w, win_h = b["spacing"][i], b["spacing"][i] * b["win_frac"][i], b["win_h"][i]
    # wall: weathering blotches, then bricks (courses of 0.3 m, staggered) fading with distance
    tone = 0.8 + 0.3 * value_noise(zw * 0.6, y * 0.6, 3 + side) \
        + 0.12 * (value_noise(zw * 7.0, y * 7.0, 9 + side) - 0.5)
    detail = np.clip(1.2 - 8.0 * fy, 0, 1) * b["brick"][i]
    k = np.flatnonzero(detail > 0)  # near brick walls only
    course = np.floor(y[k] / 0.3)
    brick = _hash01(np.floor(zw[k] / 0.6 + 0.5 * np.mod(course, 2)), course, 13 + side)
    mortar = 1 - _band(np.mod(y[k], 0.3), 0.0, 0.25, fy[k])
    tone[k] += detail[k] * (0.22 * (brick - 0.5) + 0.18 * mortar)
    rgb = b["rgb"][i] * tone[:, None]
    rgb *= (0.88 + 0.12 * np.clip(y / 6.0, 0, 1))[:, None]  # soot and shade near the ground
    light = np.minimum(b["rgb"][i] * 1.35 + 20, 240)
    # windows on the upper floors: columns along the facade, rows per floor
    col = np.mod(local - b["offset"][i] * spacing, spacing)
    upper = np.mod(y - ground, floor_h)
    lo, hi = 0.5 * (spacing - win_w), 0.5 * (spacing + win_w)
    storey = (y > ground) & (y < height - 1.0)
    pane = _band(col, lo, hi, fz) * _band(upper, 0.9, 0.9 + win_h, fy) * storey
    frame = _band(col, lo - 0.1, hi + 0.1, fz) * _band(upper, 0.8, 1.0 + win_h, fy) * storey
    sill = _band(col, lo - 0.18, hi + 0.18, fz) * _band(upper, 0.72, 0.84, fy) * storey
    bars = np.maximum(_band(col, 0.5 * spacing - 0.04, 0.5 * spacing + 0.04, fz),
                      _band(upper, 0.9 + 0.62 * win_h, 0.9 + 0.67 * win_h, fy)) * pane
    band = _band(upper, 0.0, 0.18, fy) * storey * b["bands"][i]  # string course per floor
    wid = _hash01(np.floor((local - b["offset"][i] * spacing) / spacing) + 97 * i,
                  np.floor((y - ground) / floor_h), 5 + side)
    t_in = np.clip((upper - 0.9) / win_h, 0, 1)
    glass = 26 + 30 * t_in + 120 * wid ** 4 + 25 * value_noise(zw * 3, y * 3, 17)
    glass = glass[:, None] * np.array([0.92, 0.98, 1.08], np.float32)
    # ground floor: shop windows under a coloured fascia, or the same windows as above
    cornice = _band(y, height - 0.45, height - 0.15, fy)
    pipe = _band(local, 0.0, 0.18, fz)  # downpipe / party wall between buildings
    out = rgb
    out = out + band[:, None] * (light * 0.9 - out)
    out = out + sill[:, None] * (light - out)
    out = out + frame[:, None] * (light - out)
    out = out + pane[:, None] * (glass - out)
    out = out + bars[:, None] * (light * 0.85 - out)
    out = out + cornice[:, None] * (light - out)
    # ground floor of shops: shop windows (goods behind glass) under a dark fascia
    k = np.flatnonzero((b["shop"][i] > 0.5) & (y < ground))
    ys, fys, fzs, gs, bay = y[k], fy[k], fz[k], ground[k], np.mod(local[k], 5.0)
    vitrine = _band(ys, 0.5, gs - 1.0, fys) * _band(bay, 0.35, 4.65, fzs)
    goods = 50 + 110 * value_noise(zw[k] * 2.5, ys * 4.0, 19 + side)
    goods = goods[:, None] * np.array([1.0, 0.95, 0.9], np.float32)
    posts = _band(bay, 2.45, 2.55, fzs) * vitrine
    fascia = _band(ys, gs - 0.9, gs - 0.25, fys)
    o = out[k]
    o = o + vitrine[:, None] * (goods - o)
    o = o + posts[:, None] * (30 - o)
    o = o + fascia[:, None] * (b["fascia"][i[k]] - o)
    out[k] = o
    out = out + pipe[:, None] * (out * 0.55 - out)
    out *= st.shade_left if side == 0 else st.shade_right
    return out


def _ground(st: Street, x: np.ndarray, zw: np.ndarray, fx: np.ndarray, fz: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Return colour (N x 3) and class id of ground points at (X, street position) in metres."""
    road = (x >= st.road_left) & (x < st.road_right)
    patch = value_noise(x * 0.35, zw * 0.12, 21) * 0.6 + value_noise(x * 2.0, zw * 1.1, 22) * 0.4
    rgb = np.where(road[:, None], st.road_rgb * (0.84 + 0.32 * patch)[:, None],
                   st.pavement_rgb * (0.85 + 0.3 * patch)[:, None])
    white = np.array([205, 205, 198], np.float32)
    tracks = sum(_band(x, c - 0.55, c + 0.55, fx) for c in
                 (st.centre - 0.9, st.centre - 2.4, st.centre + 0.9, st.centre + 2.4))
    rgb = rgb * (1 - 0.1 * tracks[:, None] * road[:, None])
    dash = _band(x, st.centre - 0.06, st.centre + 0.06, fx) * _band(np.mod(zw, 9.0), 0, 3, fz)
    marks = dash * road
    if st.double_yellow:
        yellow = np.array([190, 160, 60], np.float32)
        for edge, sgn in ((st.road_left, 1), (st.road_right, -1)):
            for off in (0.25, 0.45):
                a = _band(x, edge + sgn * off - 0.05, edge + sgn * off + 0.05, fx) * road
                rgb = rgb + a[:, None] * (yellow - rgb)
    else:
        for edge, sgn in ((st.road_left, 1), (st.road_right, -1)):
            marks = np.maximum(marks, _band(x, edge + sgn * 0.3 - 0.05, edge + sgn * 0.3 + 0.05,
                                            fx) * road)
    rgb = rgb + marks[:, None] * (white - rgb)
    slabs = np.maximum(_band(np.mod(zw, 0.9), 0, 0.04, fz), _band(np.mod(x, 0.9), 0, 0.04, fx))
    # the curb: its shaded face (seen as a dark strip), then its top of granite blocks
    face = (_band(x, st.road_left - 0.12, st.road_left, fx)
            + _band(x, st.road_right, st.road_right + 0.12, fx))
    top = (_band(x, st.road_left - 0.4, st.road_left - 0.12, fx)
           + _band(x, st.road_right + 0.12, st.road_right + 0.4, fx))
    joints = _band(np.mod(zw, 1.0), 0.0, 0.04, fz)
    pave = ~road
    rgb = rgb * (1 - 0.25 * (slabs * pave)[:, None])
    rgb = rgb + (top * pave)[:, None] * (st.pavement_rgb * (1.15 - 0.3 * joints)[:, None] - rgb)
    rgb = rgb + (face * pave)[:, None] * (st.road_rgb * 0.45 - rgb)
    return rgb, np.where(road, ROAD, PAVEMENT).astype(np.uint8)


@lru_cache(maxsize=8)
def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the column and row of every pixel centre, flattened (read-only, shared by frames)."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    u, v = u.ravel(), v.ravel()
    u.flags.writeable = v.flags.writeable = False
    return u, v


def draw_planes(st: Street, z_cam: float, h: int, w: int, f: float, y0: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """
    Draw sky, facades and ground: H x W x 3 float colour and H x W class ids.

    Seen from ``z_cam`` metres down the street with focal length ``f`` and the horizon at row
    ``y0`` (pixels).
    """
    u, v = _pixel_grid(h, w)
    du, dv = u - w / 2, v - y0
    n = du.size
    img = np.empty((n, 3), np.float32)
    lab = np.full(n, SKY, np.uint8)
    # ground: everything below the horizon that no facade hides
    below = dv > 0.5
    zg = np.where(below, f * CAMERA_HEIGHT_M / np.maximum(dv, 0.5), np.inf)
    # facades: planes X = wall_left (du < 0) and X = wall_right (du > 0)
    wall_x = np.where(du < 0, st.wall_left, st.wall_right)
    zf = np.where(np.abs(du) > 0.25, f * wall_x / np.where(np.abs(du) > 0.25, du, 1.0), np.inf)
    zf = np.where(zf > 0, zf, np.inf)
    hit_wall = (zf < zg) & (zf < 600)
    for side in (0, 1):
        idx = np.flatnonzero(hit_wall & ((du < 0) if side == 0 else (du > 0)))
        z = zf[idx]
        y = CAMERA_HEIGHT_M - dv[idx] * z / f
        i = _building_at(st, side, z_cam + z)
        wall = (y >= 0) & (y < st.buildings[side]["height"][i])
        idx, z, y, i = idx[wall], z[wall], y[wall], i[wall]
        fz = z * z / (f * abs(st.wall_left if side == 0 else st.wall_right))
        img[idx] = _haze(st, _facade(st, side, i, z_cam + z, y, fz, z / f), z)
        lab[idx] = BUILDING
    gi = np.flatnonzero(below & (lab != BUILDING))
    z = zg[gi]
    xg = du[gi] * CAMERA_HEIGHT_M / dv[gi]  # = du * z / f
    rgb, cls = _ground(st, xg, z_cam + z, z / f, z * z / (f * CAMERA_HEIGHT_M))
    img[gi] = _haze(st, rgb, z)
    lab[gi] = cls
    # sky, where nothing else is: bright overcast, brightest at the horizon, soft clouds
    si = np.flatnonzero(lab == SKY)
    t = np.clip(v[si] / max(y0, 1.0), 0, 1)[:, None]
    clouds = value_noise(u[si] * 6 / w, v[si] * 10 / w, 31)
    img[si] = st.sky_top + (st.sky_horizon - st.sky_top) * t ** 1.5 \
        + ((clouds - 0.5) * 26)[:, None]
    return img.reshape(h, w, 3), lab.reshape(h, w)


def _haze(st: Street, rgb: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Fade N x 3 colours at ``distance`` metres towards the horizon's colour."""
    fade = (1 - np.exp(-distance / 260.0))[:, None]
    return rgb + fade * (st.sky_horizon * 0.9 - rgb)


# ----------------------------------------------------------------------------------------------
# The camera
# ----------------------------------------------------------------------------------------------

# fine detail per class below the drawing's scale (leaves, asphalt grain), as the standard
# deviation of a luminance grain (0-255 at mid grey), set so each class's high-pass energy comes
# near CamVid's (sky smooth, road moderate, trees busy). Facades and cars get none: their detail
# is drawn (windows, bricks, panels), and random grain on them reads as foliage to the model.
_GRAIN = np.zeros(256, np.float32)
_GRAIN[[SKY, BUILDING, POLE, ROAD, PAVEMENT, TREE, SIGN, FENCE, CAR, PEDESTRIAN]] = \
    (0.0, 0.0, 4.0, 14.0, 6.0, 90.0, 4.0, 20.0, 0.0, 6.0)


@lru_cache(maxsize=8)
def _vignette(h: int, w: int) -> np.ndarray:
    """Return the H x W x 1 lens fall-off: 12 % darker in the corners."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    return (1 - 0.12 * r2)[:, :, None]


def camera_effects(img: np.ndarray, lab: np.ndarray, st: Street, rng: np.random.Generator,
                   index: int) -> np.ndarray:
    """
    Apply surface grain, then optics and sensor, and return the uint8 frame.

    Optics and sensor: white balance, exposure drift, vignetting, blur, a little noise (less in
    bright parts, as a real sensor's is after its denoiser).
    """
    h, w = img.shape[:2]
    grain = rng.standard_normal((h, w), np.float32)
    scale = h / 360.0  # grain is sized for 360 rows, so a bigger frame shows the same surfaces
    if scale > 1.0:
        grain = scale * (0.7 * cv2.GaussianBlur(grain, (0, 0), 0.45 * scale)
                         + 1.2 * cv2.GaussianBlur(grain, (0, 0), 0.8 * scale))
    else:
        grain = 0.5 * grain + 1.2 * cv2.GaussianBlur(grain, (0, 0), 0.8)
    img += (grain * _GRAIN[lab] * np.clip(img.mean(2) / 128.0, 0.3, 1.5))[:, :, None]
    img = img * st.cast * (1.0 + 0.06 * math.sin(index * 0.07))
    img *= _vignette(h, w)
    sigma = 0.3 + 0.35 * h / 360.0
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    dark = np.clip(1.0 - img.mean(2, keepdims=True) / 255.0, 0.0, 1.0)
    img += rng.standard_normal(img.shape, np.float32) * (0.8 + 1.6 * dark)
    return np.clip(img, 0, 255).astype(np.uint8)
