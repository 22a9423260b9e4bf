"""Matching a width to a trained width: one tolerance for float noise, clear errors otherwise."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from slimseg_ros.widths import TOLERANCE, find_width, match_width, same_width, width_index

TRAINED = (0.25, 0.5, 0.75, 1.0)


@pytest.mark.parametrize("value, expected", [
    (0.5, 0.5), (0.5000000001, 0.5), (0.4999999, 0.5), (1, 1.0), (0.3, None), (0.501, None),
    (0.5 + 2 * TOLERANCE, None), (math.nan, None), (math.inf, None), ("0.5", None),
    (True, None), (None, None),
])
def test_find_width(value, expected) -> None:
    assert find_width(TRAINED, value) == expected


def test_match_returns_the_listed_width_and_index_names_the_trained_ones() -> None:
    assert match_width(TRAINED, 0.75 + 1e-9) == 0.75
    assert width_index(TRAINED, 0.25) == 0 and width_index(TRAINED, 1.0) == 3
    with pytest.raises(ValueError, match=r"width 0.3 is not one of the trained widths \[0.25"):
        width_index(TRAINED, 0.3)
    for bad in ("wide", None, True):
        with pytest.raises(ValueError, match="width must be a number"):
            width_index(TRAINED, bad)
    assert same_width(0.5, 0.5000001) and not same_width(0.5, 0.50001)


def test_models_reject_near_duplicate_widths() -> None:
    from slimseg_ros.models.slimmable import validate_widths
    assert validate_widths([1.0, 0.5]) == (0.5, 1.0)
    with pytest.raises(ValueError, match="duplicate"):
        validate_widths([0.5, 1.0, 0.5000000001])


def test_widths_import_nothing_heavy() -> None:
    code = ("import sys, slimseg_ros.widths; "
            "bad = [m for m in ('torch', 'numpy', 'rclpy') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
