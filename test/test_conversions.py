"""
Image / CompressedImage <-> numpy, palettes and overlays, checked pixel by pixel.

Uses the real ``sensor_msgs`` message classes where they are importable (so rclpy's ``data``
field type, ``array.array('B')``, is what gets converted) and plain namespaces otherwise.
"""

from __future__ import annotations

import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from slimseg_ros.ros import conversions as conv

try:
    from sensor_msgs.msg import CompressedImage, Image
except ImportError:  # pip-only machine without the ROS message wheels
    Image = CompressedImage = None


def make_image(pixels: np.ndarray, encoding: str, pad: int = 0, **override) -> object:
    """Build an Image message with ``step`` padding: rows ``pad`` bytes longer than the pixels."""
    h, w = pixels.shape[:2]
    flat = pixels.reshape(h, -1)
    rows = np.concatenate([flat, np.full((h, pad), 77, np.uint8)], axis=1)
    fields = dict(height=h, width=w, encoding=encoding, is_bigendian=0, step=rows.shape[1],
                  data=array.array("B", rows.tobytes()))
    fields.update(override)
    if Image is None:
        return SimpleNamespace(**fields)
    msg = Image()
    for k, v in fields.items():
        setattr(msg, k, v)
    return msg


def rgb_frame(h: int = 5, w: int = 7) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "8UC3"])
def test_colour_encodings_give_rgb(encoding: str, pad: int) -> None:
    rgb = rgb_frame()
    alpha = np.full(rgb.shape[:2] + (1,), 200, np.uint8)
    pixels = {
        "rgb8": rgb, "bgr8": rgb[:, :, ::-1], "8UC3": rgb[:, :, ::-1],
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([rgb[:, :, ::-1], alpha], axis=2),
    }[encoding]
    out = conv.image_to_rgb(make_image(np.ascontiguousarray(pixels), encoding, pad=pad))
    assert out.dtype == np.uint8 and out.shape == rgb.shape and out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("pad", [0, 1])
def test_mono8_becomes_grey_rgb(pad: int) -> None:
    grey = rgb_frame()[:, :, 0].copy()
    out = conv.image_to_rgb(make_image(grey, "mono8", pad=pad))
    assert out.shape == grey.shape + (3,)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


def test_conversion_copies_the_message_buffer() -> None:
    msg = make_image(rgb_frame(), "rgb8")
    out = conv.image_to_rgb(msg)
    before = out.copy()
    msg.data[0] = (msg.data[0] + 1) % 256
    np.testing.assert_array_equal(out, before)


@pytest.mark.parametrize(("override", "fragment"), [
    ({"encoding": "yuv422_weird"}, "unsupported image encoding 'yuv422_weird'"),
    ({"encoding": ""}, "unsupported image encoding ''"),
    ({"step": 20}, "step 20 is smaller than width x bytes per pixel (7 x 3 = 21)"),
    ({"height": 0}, "zero-size image"),
    ({"width": 0}, "zero-size image"),
    ({"data": array.array("B", bytes(10))}, "image data has 10 bytes, expected step x height"),
])
def test_bad_images_raise_with_the_value_named(override: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        override = dict(override)
        conv.image_to_rgb(make_image(rgb_frame(), override.pop("encoding", "rgb8"), **override))
    assert fragment in str(err.value)


def test_step_larger_than_data_is_rejected() -> None:
    msg = make_image(rgb_frame(), "rgb8", pad=0)
    msg.step = 30  # claims padding that is not in the buffer
    with pytest.raises(ValueError, match="expected step x height = 30 x 5 = 150"):
        conv.image_to_rgb(msg)


def _compressed(data: bytes, fmt: str) -> object:
    if CompressedImage is None:
        return SimpleNamespace(format=fmt, data=array.array("B", data))
    msg = CompressedImage()
    msg.format = fmt
    msg.data = array.array("B", data)
    return msg


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_compressed_round_trip(ext: str) -> None:
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:, :12] = (255, 0, 0)   # left half red
    rgb[:, 12:] = (0, 0, 255)   # right half blue
    ok, enc = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    out = conv.compressed_to_rgb(_compressed(enc.tobytes(), "rgb8; " + ext.strip(".")))
    assert out.shape == rgb.shape
    tol = 0 if ext == ".png" else 40
    interior = np.r_[0:8, 16:24]  # JPEG blurs chroma across the red/blue edge
    assert np.abs(out[:, interior].astype(int) - rgb[:, interior].astype(int)).max() <= tol
    assert out[8, 2, 0] > 200 and out[8, 2, 2] < 60  # red stays red (not swapped to BGR)


@pytest.mark.parametrize(("data", "fmt", "fragment"), [
    (b"\x00garbage bytes, not an image", "jpeg", "could not decode 28 bytes"),
    (b"", "png", "has no data"),
    (b"\x89PNG", "16UC1; compressedDepth png", "depth image"),
])
def test_bad_compressed_images_raise(data: bytes, fmt: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        conv.compressed_to_rgb(_compressed(data, fmt))


def test_mask_fields_round_trip_through_an_image_message() -> None:
    mask = np.arange(35, dtype=np.uint8).reshape(5, 7)
    fields = conv.array_to_image_fields(mask, "mono8")
    assert (fields["height"], fields["width"], fields["step"]) == (5, 7, 7)
    assert fields["encoding"] == "mono8" and isinstance(fields["data"], array.array)
    msg = make_image(np.zeros((1, 1), np.uint8), "mono8")
    conv.fill_image(msg, mask, "mono8")
    back = conv.image_to_rgb(msg)[:, :, 0]
    np.testing.assert_array_equal(back, mask)


def test_fill_image_rejects_mismatched_encoding() -> None:
    with pytest.raises(ValueError, match="'rgb8' does not fit an array with 1 channel"):
        conv.array_to_image_fields(np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(ValueError, match="uint8"):
        conv.array_to_image_fields(np.zeros((2, 2), np.float32), "mono8")


def test_colorize_and_overlay() -> None:
    lut = conv.palette_lut([[0, 0, 0], [255, 0, 0], [0, 255, 0]])
    mask = np.array([[0, 1], [2, 9]], np.uint8)  # 9 is beyond the palette -> black
    colour = conv.colorize(mask, lut)
    np.testing.assert_array_equal(colour, [[[0, 0, 0], [255, 0, 0]], [[0, 255, 0], [0, 0, 0]]])
    frame = np.full((2, 2, 3), 100, np.uint8)
    blended = conv.overlay(frame, colour, alpha=0.5)
    np.testing.assert_array_equal(blended[0, 1], [178, 50, 50])  # (100 + 255) / 2 rounded
    np.testing.assert_array_equal(conv.overlay(frame, colour, alpha=0.0), frame)
    with pytest.raises(ValueError, match="alpha"):
        conv.overlay(frame, colour, alpha=1.5)
    with pytest.raises(ValueError, match="0..255"):
        conv.palette_lut([[0, 0, 300]])
