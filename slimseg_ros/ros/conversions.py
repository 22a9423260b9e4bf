"""
Camera messages <-> numpy arrays, palettes and overlays, without importing ROS.

Messages are duck-typed: anything with the fields of ``sensor_msgs/Image`` (``height``, ``width``,
``encoding``, ``step``, ``data``) or ``sensor_msgs/CompressedImage`` (``format``, ``data``) works,
so these functions are tested without a ROS graph and the module imports without rclpy,
sensor_msgs or cv_bridge. All 8-bit colour/mono encodings are read with numpy (a strided view that
honours ``step`` padding, copied once); where ``cv_bridge`` is importable it is used only for the
encodings numpy does not handle here (16-bit, Bayer, YUV), so a ROS installation gains those.

Every failure is a ``ValueError`` whose message names the offending value, so the node can log it
and report it in diagnostics.
"""

from __future__ import annotations

import array
from collections.abc import Sequence
from typing import Any

import numpy as np

# encoding -> (channels, how to turn the channels into RGB)
_ENCODINGS: dict[str, tuple[int, str]] = {
    "rgb8": (3, "rgb"),
    "bgr8": (3, "bgr"),
    "rgba8": (4, "rgba"),
    "bgra8": (4, "bgra"),
    "mono8": (1, "mono"),
    "8UC1": (1, "mono"),
    "8UC3": (3, "bgr"),  # OpenCV's default channel order for an untyped 3-channel image
    "8UC4": (4, "bgra"),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)
COMPRESSED_FORMATS: tuple[str, ...] = ("jpeg", "jpg", "png")


def _as_bytes_view(data: Any) -> np.ndarray:
    """View a message's ``data`` (array.array, bytes, memoryview or int list) as flat uint8."""
    if isinstance(data, (bytes, bytearray, memoryview)) or (
            isinstance(data, array.array) and data.typecode == "B"):
        return np.frombuffer(data, dtype=np.uint8)  # zero-copy
    return np.asarray(data, dtype=np.uint8).reshape(-1)


def _cv_bridge_to_rgb(msg: Any) -> np.ndarray | None:
    """Convert an encoding numpy does not handle here with cv_bridge, if it is installed."""
    try:
        from cv_bridge import CvBridge  # optional; absent on pip-only machines
    except ImportError:
        return None
    try:
        out = CvBridge().imgmsg_to_cv2(msg, desired_encoding="rgb8")
    except Exception as exc:  # cv_bridge raises CvBridgeError and others for bad images
        raise ValueError(f"cannot convert image with encoding {msg.encoding!r}: {exc}") from None
    return np.ascontiguousarray(out)


def image_to_rgb(msg: Any) -> np.ndarray:
    """
    ``sensor_msgs/Image`` -> ``H x W x 3`` uint8 RGB array (a fresh, contiguous copy).

    ``step`` is the length of one row in bytes and may include padding after ``width`` pixels;
    ``data`` must hold exactly ``step * height`` bytes.
    """
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    encoding = str(msg.encoding)
    if height <= 0 or width <= 0:
        raise ValueError(f"zero-size image ({width}x{height}, encoding {encoding!r})")
    if encoding not in _ENCODINGS:
        converted = _cv_bridge_to_rgb(msg) if encoding else None
        if converted is not None:
            return converted
        raise ValueError(f"unsupported image encoding {encoding!r}; supported: "
                         f"{', '.join(SUPPORTED_ENCODINGS)}")
    channels, order = _ENCODINGS[encoding]
    row_bytes = width * channels
    if step < row_bytes:
        raise ValueError(f"image step {step} is smaller than width x bytes per pixel "
                         f"({width} x {channels} = {row_bytes}) for encoding {encoding!r}")
    buf = _as_bytes_view(msg.data)
    if buf.size != step * height:
        raise ValueError(f"image data has {buf.size} bytes, expected step x height = "
                         f"{step} x {height} = {step * height}")
    rows = buf.reshape(height, step)[:, :row_bytes].reshape(height, width, channels)
    if order == "rgb":
        return rows.copy()
    if order == "bgr":
        return np.ascontiguousarray(rows[:, :, ::-1])
    if order == "rgba":
        return np.ascontiguousarray(rows[:, :, :3])
    if order == "bgra":
        return np.ascontiguousarray(rows[:, :, 2::-1])
    return np.repeat(rows, 3, axis=2)  # mono -> grey RGB


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """
    ``sensor_msgs/CompressedImage`` (JPEG or PNG) -> ``H x W x 3`` uint8 RGB array.

    ``format`` is e.g. ``"jpeg"`` or ``"bgr8; jpeg compressed bgr8"`` (image_transport's form);
    the bytes are decoded by OpenCV whatever the declared format, which is only checked for
    formats that cannot be colour images (``compressedDepth``).
    """
    import cv2  # imported here so importing this module stays light

    fmt = str(getattr(msg, "format", ""))
    if "compresseddepth" in fmt.lower().replace(" ", ""):
        raise ValueError(f"compressed image format {fmt!r} is a depth image, not a colour image")
    buf = _as_bytes_view(msg.data)
    if buf.size == 0:
        raise ValueError(f"compressed image (format {fmt!r}) has no data")
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if decoded is None or decoded.size == 0:
        raise ValueError(f"could not decode {buf.size} bytes of compressed image "
                         f"(format {fmt!r}): not a valid JPEG or PNG")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def grey_thumbnail(rgb: np.ndarray, size: tuple[int, int] = (24, 32)) -> np.ndarray:
    """
    ``H x W x 3`` uint8 RGB -> a ``size`` (rows, columns) grey thumbnail, uint8.

    Area-averaged, so sensor noise averages out and only a change of the scene moves it (the
    static-scene check compares two of them).
    """
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def array_to_image_fields(image: np.ndarray, encoding: str) -> dict[str, Any]:
    """
    Fields of a ``sensor_msgs/Image`` holding ``image`` (H x W uint8 or H x W x C uint8).

    ``data`` is an ``array.array('B')``, which rclpy's message setter takes without a per-byte
    check (a list or bytes would be validated element by element: seconds for a 1080p frame).
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected an H x W or H x W x C uint8 array, got {image.dtype} "
                         f"with shape {image.shape}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    expected = _ENCODINGS.get(encoding, (None, ""))[0]
    if expected != channels:
        raise ValueError(f"encoding {encoding!r} does not fit an array with {channels} channel(s)")
    image = np.ascontiguousarray(image)
    data = array.array("B")
    data.frombytes(image.tobytes())
    return {"height": int(image.shape[0]), "width": int(image.shape[1]), "encoding": encoding,
            "is_bigendian": 0, "step": int(image.shape[1]) * channels, "data": data}


def fill_image(msg: Any, image: np.ndarray, encoding: str) -> Any:
    """Set the pixel fields of an Image message from an array; returns ``msg``."""
    for name, value in array_to_image_fields(image, encoding).items():
        setattr(msg, name, value)
    return msg


PNG_LEVEL = 3  # compressed_image_transport's default png_level (OpenCV's default too)


def fill_png_mono8(msg: Any, mask: np.ndarray, fmt: str, level: int = PNG_LEVEL) -> Any:
    """
    Set a ``sensor_msgs/CompressedImage`` to ``mask`` (H x W uint8) as a lossless PNG.

    ``fmt`` is the ``format`` string to declare (the contract's, as image_transport writes it);
    returns ``msg``. PNG, unlike JPEG, keeps every class id exactly.
    """
    import cv2

    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"expected an H x W uint8 mask, got {mask.dtype} with shape {mask.shape}")
    ok, encoded = cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, int(level)])
    if not ok:
        raise ValueError(f"PNG encoding of a {mask.shape[0]}x{mask.shape[1]} mask failed")
    data = array.array("B")
    data.frombytes(encoded.tobytes())
    msg.format = fmt
    msg.data = data
    return msg


def palette_lut(palette: Sequence[Sequence[int]]) -> np.ndarray:
    """
    Build a 256 x 3 uint8 lookup table from class id to RGB.

    Ids beyond the palette map to black.
    """
    lut = np.zeros((256, 3), dtype=np.uint8)
    colours = np.asarray(palette, dtype=np.int64).reshape(-1, 3)
    if colours.shape[0] > 256 or colours.min(initial=0) < 0 or colours.max(initial=0) > 255:
        raise ValueError(f"a palette needs at most 256 RGB triples in 0..255, got shape "
                         f"{colours.shape} with values {colours.min(initial=0)}.."
                         f"{colours.max(initial=0)}")
    lut[: colours.shape[0]] = colours
    return lut


def colorize(mask: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``H x W`` uint8 class ids -> ``H x W x 3`` uint8 RGB through a :func:`palette_lut` table."""
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"expected an H x W uint8 mask, got {mask.dtype} with shape {mask.shape}")
    return lut[mask]


def overlay(image_rgb: np.ndarray, color_mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a colour mask over the RGB frame: ``(1 - alpha) * image + alpha * mask``, uint8."""
    if image_rgb.shape != color_mask.shape:
        raise ValueError(f"frame {image_rgb.shape} and colour mask {color_mask.shape} differ")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay alpha must be in [0, 1], got {alpha}")
    blended = image_rgb.astype(np.float32) * (1.0 - alpha) + color_mask.astype(np.float32) * alpha
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
