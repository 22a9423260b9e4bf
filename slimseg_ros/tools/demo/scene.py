"""
A synthetic driving view with its own label map, for the demo when the user gives no frames.

Why it exists: the demo's first picture decides whether a newcomer trusts the model. Flat
cartoon frames (saturated blue sky, untextured boxes) are far from what the packaged model was
trained on (CamVid: an overcast, bright sky, textured facades and asphalt, sensor noise and blur),
and it segmented them badly. This scene is drawn in perspective like a car's front camera in a
street canyon, with CamVid-like colour statistics and proportions, and every pixel's CamVid class
id is known, so the demo can *measure* how well the model does on it (:func:`scene_miou`) and say
in its report when the frames are out of distribution (:func:`scene_report_sentence`).

Geometry: a pinhole camera 1.3 m above the road looks along a straight street
(+Z). The ground and the two facade planes are shaded per pixel from their world coordinates;
trees, poles, signs, cars and pedestrians are drawn far to near on top. Frame ``index`` is the
camera ``STEP_M`` metres further down the street; every ``FRAMES_PER_STREET`` frames a new
street starts. Everything is a pure function of ``(index, height, width, seed)``.

numpy and OpenCV only: no ROS, no torch.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import numpy as np

from .scene_objects import DRAW, Canvas
from .scene_street import (BICYCLIST, BUILDING, CAR, CLASS_NAMES, FENCE, FRAMES_PER_STREET,
                           IGNORE_LABEL, MIN_SIZE, PAVEMENT, PEDESTRIAN, POLE, ROAD, SIGN, SKY,
                           STEP_M, TREE, VIEW_M, camera_effects, draw_planes, street_layout)

__all__ = ["CLASS_NAMES", "IGNORE_LABEL", "MIOU_THRESHOLD", "FRAMES_PER_STREET", "STEP_M",
           "SKY", "BUILDING", "POLE", "ROAD", "PAVEMENT", "TREE", "SIGN", "FENCE", "CAR",
           "PEDESTRIAN", "BICYCLIST", "CLASS_MISMATCH_SENTENCE", "street_scene",
           "evaluation_indices", "miou_from_confusion", "SceneScore", "scene_classes_match",
           "scene_miou", "reference_width", "frames_in_distribution", "scene_report_sentence"]

MIOU_THRESHOLD = 50.0        # percent, at width 1.0: below it the frames are out of distribution


def street_scene(index: int, height: int = 360, width: int = 480, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """
    Draw frame ``index`` of the synthetic drive and its label map.

    Returns ``(rgb, labels)``: ``height x width x 3`` uint8 RGB (what the engine takes) and
    ``height x width`` uint8 CamVid class ids (:data:`CLASS_NAMES`). The same arguments give the
    same frame; consecutive indices move the camera ``STEP_M`` metres down the street.
    """
    for name, value in (("index", index), ("height", height), ("width", width), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"street_scene: {name} must be an int, got {value!r}")
    if index < 0 or seed < 0:
        raise ValueError(f"street_scene: index and seed must be >= 0, got {index} and {seed}")
    if height < MIN_SIZE or width < MIN_SIZE:
        raise ValueError(f"street_scene: frame {height}x{width} is smaller than "
                         f"{MIN_SIZE}x{MIN_SIZE} pixels")
    street_no, step = divmod(int(index), FRAMES_PER_STREET)
    st = street_layout(int(seed), street_no)
    z_cam = step * STEP_M
    f = 0.86 * width                          # about 60 degrees of horizontal field of view
    y0 = height * (st.horizon + 0.006 * math.sin(index * 0.9))  # a little pitch from the road
    img, lab = draw_planes(st, z_cam, height, width, f, y0)
    canvas = Canvas(img, lab, f, y0)
    visible = [(z - z_cam, kind, x, p) for kind, x, z, p in st.objects
               if -5.0 < z - z_cam < VIEW_M]  # a car's far end can still be beside the camera
    for z, kind, x, p in sorted(visible, key=lambda o: -o[0]):
        DRAW[kind](canvas, x, z, p)
    rng = np.random.default_rng([int(seed), int(index), 7])
    return camera_effects(canvas.img, canvas.lab, st, rng, int(index)), canvas.lab


# ----------------------------------------------------------------------------------------------
# How well a model does on the scene
# ----------------------------------------------------------------------------------------------

def evaluation_indices(n_frames: int) -> list[int]:
    """
    Return the frame indices :func:`scene_miou` scores.

    They are spread over streets and positions, so that 20 frames are 20 different views rather
    than 20 steps of one street.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    stride = FRAMES_PER_STREET // 3 + 7
    return [k * stride for k in range(n_frames)]


def miou_from_confusion(confusion: np.ndarray) -> float:
    """
    Return the mean IoU in percent over the classes present in the truth.

    The input is an N x N confusion matrix (rows truth, columns prediction).

    A class the generator never draws (a bicyclist) is left out instead of counted as 0; pixels
    the model gives to it still lower the IoU of their true class.
    """
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {confusion.shape}")
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = confusion.sum(1) > 0
    if not present.any():
        raise ValueError("no labelled pixels to score")
    return float(100.0 * np.mean(tp[present] / union[present]))


class SceneScore:
    """
    Confusion matrices per width, filled frame by frame.

    For a caller that already has the masks (the demo receives them from the node) and
    regenerates the truth with :func:`street_scene` from the frame index it published.
    """

    def __init__(self) -> None:
        self._n = len(CLASS_NAMES)
        self.confusion: dict[float, np.ndarray] = {}  # width -> N x N, rows truth

    def add(self, width: float, truth: np.ndarray, pred: np.ndarray) -> None:
        """Count one H x W mask ``pred`` at ``width`` against the label map ``truth``."""
        pred, truth = np.asarray(pred), np.asarray(truth)
        if pred.shape != truth.shape:
            raise ValueError(f"mask of shape {pred.shape} for a label map of shape {truth.shape}")
        if pred.size and (pred.min() < 0 or pred.max() >= self._n):
            raise ValueError(f"mask holds class ids outside 0..{self._n - 1}: the model's "
                             f"classes are not the scene's (CLASS_NAMES)")
        valid = truth != IGNORE_LABEL
        counts = np.bincount(self._n * truth[valid].astype(np.int64)
                             + pred[valid].astype(np.int64), minlength=self._n ** 2)
        matrix = self.confusion.setdefault(float(width), np.zeros((self._n, self._n), np.int64))
        matrix += counts.reshape(self._n, self._n)

    def miou(self) -> dict[float, float]:
        """Return the mIoU in percent per width so far (see :func:`miou_from_confusion`)."""
        return {w: miou_from_confusion(m) for w, m in sorted(self.confusion.items())}


def scene_classes_match(class_names: Sequence[str]) -> bool:
    """
    Tell whether a model's classes are the scene's (CamVid's 11, in order).

    Only then can its masks be scored against the generated label maps.
    """
    return tuple(class_names) == CLASS_NAMES


def scene_miou(predict: Callable[[np.ndarray, float], np.ndarray], widths: Iterable[float],
               n_frames: int = 20, size: tuple[int, int] = (360, 480), seed: int = 0
               ) -> dict[float, float]:
    """
    Measure the mIoU in percent per width of ``predict(rgb, width) -> H x W class ids``.

    It is scored on ``n_frames`` generated frames of ``size`` (height, width) pixels, against the
    generator's own label maps (frames :func:`evaluation_indices`; labels :data:`IGNORE_LABEL`
    would not count).
    """
    widths = [float(w) for w in widths]
    if not widths:
        raise ValueError("scene_miou needs at least one width")
    score = SceneScore()
    for index in evaluation_indices(n_frames):
        rgb, truth = street_scene(index, size[0], size[1], seed)
        for w in widths:
            score.add(w, truth, predict(rgb, w))
    return score.miou()


def reference_width(miou_by_width: dict[float, float]) -> float:
    """Return the width the verdict is taken at: 1.0 when measured, else the widest measured."""
    if not miou_by_width:
        raise ValueError("no mIoU figures to report")
    return 1.0 if 1.0 in miou_by_width else max(miou_by_width)


def frames_in_distribution(miou_by_width: dict[float, float]) -> bool:
    """
    Tell whether the model segments the generated frames well enough for the demo's pictures.

    Well enough means the pictures speak for it: mIoU at the reference width >=
    :data:`MIOU_THRESHOLD`.
    """
    return miou_by_width[reference_width(miou_by_width)] >= MIOU_THRESHOLD


def scene_report_sentence(miou_by_width: dict[float, float], n_frames: int | None = None,
                          size: tuple[int, int] | None = None) -> str:
    """
    Return the report's sentence about the generated frames, chosen by the measured figures.

    Out of distribution below :data:`MIOU_THRESHOLD` at the reference width, else the figures.
    ``n_frames`` and ``size`` (height, width), when given, say what was measured.
    """
    ref = reference_width(miou_by_width)
    figures = ", ".join(f"{miou_by_width[w]:.1f} at width {w:g}" for w in sorted(miou_by_width))
    what = "generated street frames"
    if n_frames is not None:
        what = f"{n_frames} {what}"
    if size is not None:
        what = f"{what} of {size[0]}x{size[1]} pixels"
    if frames_in_distribution(miou_by_width):
        return (f"On {what} the model reaches mIoU {figures} (percent, against the "
                f"generator's own label maps; {MIOU_THRESHOLD:g} at width {ref:g} is the bar), "
                f"so the pictures are a fair first look at it.")
    return (f"The {what} are out of distribution for this model: mIoU "
            f"{miou_by_width[ref]:.1f} at width {ref:g} is below {MIOU_THRESHOLD:g} (all "
            f"widths: {figures}), so its masks here say little about how it does on a real "
            f"camera; run the demo with --images on real frames (an image folder or a video).")


CLASS_MISMATCH_SENTENCE = (
    "The generated street frames are labelled with CamVid's 11 classes and this model has "
    "other classes, so no mIoU is measured on them; run the demo with --images on real frames "
    "to judge it.")
