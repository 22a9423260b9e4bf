"""
Matching a width to a trained width, written once.

Widths arrive as floats from YAML, ROS messages, JSON files and checkpoints, so ``0.5`` may come
back as ``0.5000000001``. Everything that asks "which trained width is this?" (models, engine,
governor, latency store, training, tools) uses these functions and their one tolerance. Plain
Python, so the governor (no torch) and the models can both import it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

TOLERANCE = 1e-6  # two widths closer than this are the same width


def _as_float(width: object) -> float:
    if isinstance(width, bool) or not isinstance(width, (int, float)):
        raise ValueError(f"width must be a number, got {width!r}")
    return float(width)


def same_width(a: float, b: float) -> bool:
    """Return True when ``a`` and ``b`` are the same width (within :data:`TOLERANCE`)."""
    return math.isclose(float(a), float(b), rel_tol=0.0, abs_tol=TOLERANCE)


def find_width(widths: Sequence[float], width: float) -> float | None:
    """
    Return the entry of ``widths`` equal to ``width``.

    None when there is none (also for NaN and non-numbers).
    """
    try:
        w = _as_float(width)
    except ValueError:
        return None
    return next((t for t in widths if same_width(t, w)), None)


def width_index(widths: Sequence[float], width: float) -> int:
    """
    Index of the entry of ``widths`` equal to ``width``.

    Raises ``ValueError`` naming the trained widths when there is none (or for a non-number).
    """
    w = _as_float(width)
    for i, t in enumerate(widths):
        if same_width(t, w):
            return i
    raise ValueError(f"width {width!r} is not one of the trained widths {list(widths)}")


def match_width(widths: Sequence[float], width: float) -> float:
    """
    Return the trained width equal to ``width``, exactly as ``widths`` lists it.

    ValueError when there is none.
    """
    return widths[width_index(widths, width)]
